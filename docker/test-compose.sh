#!/usr/bin/env bash
# The compose cluster end to end (CI runs it where a Docker engine answers;
# elsewhere it prints why it is skipped and exits 0):
#   1. builds the raftmq:local image, starts 5 nodes, 5 replicators and the
#      test client, waits for a leader;
#   2. submits operations and checks every replicator executed them, all in
#      the same order;
#   3. stops the leader's container, checks a new leader is elected and
#      execution continues on every replicator (the stopped node's replicator
#      through its fallback nodes);
#   4. cuts a follower off the network (docker network disconnect), checks the
#      others go on without it, heals it and checks it catches up;
# then tears everything down (volumes included) and prints summary lines.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
    echo "compose test: skipped (no Docker engine answers: docker info failed)"
    exit 0
fi
if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
else
    echo "compose test: skipped (neither docker compose nor docker-compose is installed)"
    exit 0
fi

PROJECT=${RAFTMQ_COMPOSE_PROJECT:-raftmqci}
NETWORK="${PROJECT}_cluster"
NODES="node1:7101,node2:7101,node3:7101,node4:7101,node5:7101"
export SUBMIT_EVERY=${SUBMIT_EVERY:-1s}
WORK=$(mktemp -d)
START=$(date +%s)
SUMMARY=()

dc() { "${COMPOSE[@]}" -p "$PROJECT" -f docker/docker-compose.yml "$@"; }
cid() { dc ps -q "$1"; }
elapsed() { echo $(($(date +%s) - START)); }
note() {
    echo "compose test: $*"
    SUMMARY+=("$*")
}
teardown() {
    dc down -v --remove-orphans >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
fail() {
    echo "compose test: FAIL after $(elapsed) s: $*" >&2
    dc logs --no-color --tail 15 >&2 2>&1 || true
    exit 1
}
trap teardown EXIT

# A number field of node $1's /status, read inside its container.
status_field() {
    docker exec "$(cid "node$1")" /raftmq status --node 127.0.0.1:7001 2>/dev/null |
        grep -o "\"$2\": *[0-9]*" | grep -o '[0-9]*$' || true
}

# Waits until the nodes given agree on one leader among them; prints its id.
wait_leader() {
    local deadline=$(($(date +%s) + 60)) id leader agreed
    while [ "$(date +%s)" -lt "$deadline" ]; do
        agreed=yes
        leader=""
        for id in "$@"; do
            local l
            l=$(status_field "$id" leader_id)
            if [ -z "$l" ] || { [ -n "$leader" ] && [ "$l" != "$leader" ]; }; then
                agreed=no
                break
            fi
            leader=$l
        done
        if [ "$agreed" = yes ] && [[ " $* " == *" $leader "* ]]; then
            echo "$leader"
            return 0
        fi
        sleep 0.5
    done
    return 1
}

# The node ids other than $1.
others() {
    local i
    for i in 1 2 3 4 5; do
        if [ "$i" != "$1" ]; then echo -n "$i "; fi
    done
}

# Replicator $1's executed operations, one "<op> <index>" a line, in order.
executed() {
    docker logs "$(cid "replicator$1")" 2>/dev/null |
        sed -n "s/^Node $1 executes op=\(.*\) at index=\([0-9]*\)\$/\1 \2/p"
}

# Submits <prefix>-1 .. <prefix>-<count> through the client container.
burst() {
    docker exec "$(cid client)" /raftmq client submit --every 100ms --count "$2" \
        --prefix "$1" --node "$NODES" >>"$WORK/bursts.log" 2>&1 ||
        fail "submitting $1-1..$2 failed: $(tail -3 "$WORK/bursts.log")"
}

# Waits until each replicator given executed <prefix>-1 .. <prefix>-<count>.
wait_executed() {
    local prefix=$1 count=$2 deadline=$(($(date +%s) + 60)) id n
    shift 2
    for id in "$@"; do
        while true; do
            n=$(executed "$id" | grep -c "^$prefix-[0-9]* " || true)
            [ "$n" -ge "$count" ] && break
            [ "$(date +%s)" -lt "$deadline" ] ||
                fail "replicator $id executed $n of $count $prefix operations"
            sleep 0.5
        done
    done
}

# Checks that what every replicator executed is a prefix of one sequence, and
# that no operation was executed twice.
check_same_order() {
    local id longest="" most=-1 n
    for id in 1 2 3 4 5; do
        executed "$id" >"$WORK/r$id"
        n=$(wc -l <"$WORK/r$id")
        if [ "$n" -gt "$most" ]; then
            most=$n
            longest="$WORK/r$id"
        fi
    done
    for id in 1 2 3 4 5; do
        n=$(wc -l <"$WORK/r$id")
        head -n "$n" "$longest" | cmp -s - "$WORK/r$id" ||
            fail "replicator $id executed a different sequence: $(diff <(head -n "$n" "$longest") "$WORK/r$id" | head -5)"
        [ "$(cut -d' ' -f1 "$WORK/r$id" | sort | uniq -d | wc -l)" -eq 0 ] ||
            fail "replicator $id executed an operation twice"
    done
    echo "$most"
}

echo "compose test: building the image and starting the cluster (project $PROJECT)"
teardown
mkdir -p "$WORK"
docker/build-image.sh
dc up -d >"$WORK/up.log" 2>&1 || fail "compose up failed: $(cat "$WORK/up.log")"

# 1. A leader.
LEADER=$(wait_leader 1 2 3 4 5) || fail "no leader within 60 s"
note "5 nodes, 5 replicators and the client are up; node $LEADER leads ($(elapsed) s)"

# 2. Operations executed everywhere, in one order.
burst check 10
wait_executed check 10 1 2 3 4 5
TOTAL=$(check_same_order)
note "10 submitted operations executed by all 5 replicators; all $TOTAL executions in the same order"

# 3. Stop the leader.
OLD=$LEADER
t0=$(date +%s)
dc stop -t 5 "node$OLD" >/dev/null 2>&1
OTHERS=$(others "$OLD")
# shellcheck disable=SC2086
LEADER=$(wait_leader $OTHERS) || fail "no new leader after stopping node $OLD"
[ "$LEADER" != "$OLD" ] || fail "node $OLD still reported as leader"
note "stopped the leader node $OLD; node $LEADER leads after $(($(date +%s) - t0)) s"
burst failover 10
wait_executed failover 10 1 2 3 4 5
TOTAL=$(check_same_order)
note "10 more operations executed by all 5 replicators (replicator $OLD through a fallback node); $TOTAL in the same order"
dc start "node$OLD" >/dev/null 2>&1
LEADER=$(wait_leader 1 2 3 4 5) || fail "node $OLD did not rejoin"

# 4. Cut a follower off, then heal it.
CUT=$(others "$LEADER" | cut -d' ' -f1)
docker network disconnect "$NETWORK" "$(cid "node$CUT")"
OTHERS=$(others "$CUT")
burst partition 10
# shellcheck disable=SC2086
wait_executed partition 10 $OTHERS
N=$(executed "$CUT" | grep -c "^partition-" || true)
[ "$N" -eq 0 ] || fail "replicator $CUT executed $N operations while its node was cut off"
BEHIND=$(status_field "$CUT" commit_index)
note "cut node $CUT off the network: 10 operations committed and executed without it (its commit index stayed at $BEHIND)"
t0=$(date +%s)
docker network connect --alias "node$CUT" "$NETWORK" "$(cid "node$CUT")"
wait_executed partition 10 "$CUT"
TOTAL=$(check_same_order)
note "healed node $CUT: it caught up in $(($(date +%s) - t0)) s (commit index $(status_field "$CUT" commit_index)); $TOTAL executions in the same order on all 5 replicators"

echo
echo "== compose test summary"
for line in "${SUMMARY[@]}"; do echo "compose test: $line"; done
echo "compose test: PASS in $(elapsed) s"
