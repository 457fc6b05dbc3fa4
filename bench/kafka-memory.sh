#!/usr/bin/env bash
# Issue target: a node holding GIB GiB of Kafka partition data keeps its resident memory small
# and restarts to serving quickly. Starts 3 nodes (release build, fsync on), produces 100-byte
# records over Kafka until node 1's partition data reaches GIB GiB, then reports each node's
# partition data and RSS, and the time from a kill -9 and restart of node 1 to its first
# answered request (REST /status, then a Kafka Metadata through kcat if installed).
#
#   bench/kafka-memory.sh [GIB=5] [EXTRA NODE FLAGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
GIB=${1:-5}
shift || true
R=${RAFTMQ:-target/release/raftmq}
[ -x "$R" ] || cargo build --release -p raftmq
DIR=$(mktemp -d /tmp/raftmq-memory.XXXXXX)
PEERS=1=127.0.0.1:7551,2=127.0.0.1:7552,3=127.0.0.1:7553
pids=()
cleanup() { kill -9 "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
start() {
    local i=$1
    shift
    "$R" node --id "$i" --listen 127.0.0.1:745$i --raft-listen 127.0.0.1:755$i --peers "$PEERS" \
        --kafka-listen 127.0.0.1:965$i --data-dir "$DIR/n$i" "$@" >>"$DIR/n$i.log" 2>&1 &
    pids[$i]=$!
}
for i in 1 2 3; do start "$i" "$@"; done
for _ in $(seq 300); do
    curl -sf localhost:7451/status | grep -q '"leader_id": *[1-9]' && break
    sleep 0.2
done
rss() { awk '/VmRSS/ {printf "%d MB", $2/1024}' "/proc/${pids[$1]}/status"; }
data() { du -sb "$DIR/n$1/partitions" 2>/dev/null | awk '{printf "%.2f GiB", $1/2^30}'; }
goal=$((GIB * 1024 * 1024 * 1024))
echo "== producing until node 1 holds $GIB GiB of partition data"
"$R" bench --kafka-nodes 127.0.0.1:9651,127.0.0.1:9652,127.0.0.1:9653 --nodes 127.0.0.1:7451 \
    --protocol kafka --clients 4 --partitions 3 --duration 3600s >"$DIR/bench.log" 2>&1 &
bench=$!
while kill -0 "$bench" 2>/dev/null; do
    sleep 10
    held=$(du -sb "$DIR/n1/partitions" | awk '{print $1}')
    echo "  $(data 1) on node 1; RSS $(rss 1) / $(rss 2) / $(rss 3)"
    [ "$held" -ge "$goal" ] && break
done
kill "$bench" 2>/dev/null || true
wait "$bench" 2>/dev/null || true
sleep 5
for i in 1 2 3; do echo "node $i: partition data $(data "$i"), RSS $(rss "$i")"; done
echo "== kill -9 node 1 and restart it"
kill -9 "${pids[1]}"
wait "${pids[1]}" 2>/dev/null || true
t0=$(date +%s.%N)
start 1 "$@"
until curl -sf localhost:7451/status >/dev/null; do sleep 0.01; done
t1=$(date +%s.%N)
if command -v kcat >/dev/null; then
    until kcat -b 127.0.0.1:9651 -L -m 1 >/dev/null 2>&1; do sleep 0.01; done
fi
t2=$(date +%s.%N)
echo "restart to serving: REST $(echo "$t1 - $t0" | bc) s, Kafka $(echo "$t2 - $t0" | bc) s"
sleep 3
echo "node 1 after the restart: partition data $(data 1), RSS $(rss 1)"
