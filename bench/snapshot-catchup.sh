#!/usr/bin/env bash
# Issue target: a new member catches up by a snapshot that streams the partition data, so
# neither end's memory grows with it. Starts nodes 1 and 2 of a 3-node cluster (release
# build, fsync on), produces 100-byte records over Kafka until node 1 holds GIB GiB of
# partition data, then starts node 3 with an empty data dir: the log it missed is compacted,
# so the leader sends it a snapshot carrying every batch. Reports the time until node 3 is
# ready with all of node 1's partition data, and the largest RSS and anonymous RSS each node
# showed while it caught up (sampled every 0.1 s; the spooled snapshot is a mapped file, so
# its pages count in RSS while mapped but are page cache, not the heap).
#
#   bench/snapshot-catchup.sh [GIB=2] [EXTRA NODE FLAGS...]   (CATCHUP_WAIT=600: seconds)
set -euo pipefail
cd "$(dirname "$0")/.."
GIB=${1:-2}
shift || true
R=${RAFTMQ:-target/release/raftmq}
[ -x "$R" ] || cargo build --release -p raftmq
DIR=$(mktemp -d /tmp/raftmq-catchup.XXXXXX)
PEERS=1=127.0.0.1:7561,2=127.0.0.1:7562,3=127.0.0.1:7563
pids=()
cleanup() { kill -9 "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
start() {
    local i=$1
    shift
    "$R" node --id "$i" --listen 127.0.0.1:746$i --raft-listen 127.0.0.1:756$i --peers "$PEERS" \
        --kafka-listen 127.0.0.1:966$i --data-dir "$DIR/n$i" "$@" >>"$DIR/n$i.log" 2>&1 &
    pids[$i]=$!
}
for i in 1 2; do start "$i" "$@"; done
for _ in $(seq 300); do
    curl -sf localhost:7461/status | grep -q '"leader_id": *[1-9]' && break
    sleep 0.2
done
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/${pids[$1]}/status"; }
bytes() { { du -sb "$DIR/n$1/partitions" 2>/dev/null || true; } | awk '{n = $1} END {printf "%.0f\n", n}'; }
gib() { awk -v b="$1" 'BEGIN {printf "%.2f GiB", b/2^30}'; }
goal=$((GIB * 1024 * 1024 * 1024))
echo "== producing on nodes 1 and 2 until node 1 holds $GIB GiB of partition data"
"$R" bench --kafka-nodes 127.0.0.1:9661,127.0.0.1:9662 --nodes 127.0.0.1:7461 \
    --protocol kafka --clients 4 --partitions 3 --duration 3600s >"$DIR/bench.log" 2>&1 &
bench=$!
while kill -0 "$bench" 2>/dev/null; do
    sleep 10
    echo "  $(gib "$(bytes 1)") on node 1"
    [ "$(bytes 1)" -ge "$goal" ] && break
done
kill "$bench" 2>/dev/null || true
wait "$bench" 2>/dev/null || true
sleep 5
held=$(bytes 1)
for i in 1 2; do
    echo "node $i before: partition data $(gib "$(bytes "$i")"), RSS $(($(status_kb "$i" VmRSS) / 1024)) MB"
done
echo "== starting node 3 with an empty data dir"
declare -A peak_rss peak_anon
t0=$(date +%s.%N)
start 3 "$@"
wait_s=${CATCHUP_WAIT:-600}
deadline=$((SECONDS + wait_s))
while true; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "node 3 did not catch up in $wait_s s: $(gib "$(bytes 3)") of $(gib "$held")" >&2
        grep -h "snapshot" "$DIR"/n*.log | tail -5 >&2
        exit 1
    fi
    for i in 1 2 3; do
        r=$(status_kb "$i" VmRSS) a=$(status_kb "$i" RssAnon)
        [ "${r:-0}" -gt "${peak_rss[$i]:-0}" ] && peak_rss[$i]=$r
        [ "${a:-0}" -gt "${peak_anon[$i]:-0}" ] && peak_anon[$i]=$a
    done
    if [ "$(bytes 3)" -ge "$held" ] && curl -sf localhost:7463/readyz >/dev/null; then
        break
    fi
    sleep 0.1
done
t1=$(date +%s.%N)
echo "node 3 caught up $(gib "$(bytes 3)") in $(echo "$t1 - $t0" | bc) s"
for i in 1 2 3; do
    echo "node $i while node 3 caught up: peak RSS $((peak_rss[$i] / 1024)) MB, peak anonymous RSS $((peak_anon[$i] / 1024)) MB"
done
grep -h "installed snapshot" "$DIR"/n3.log | tail -1 || true
sleep 5
echo "node 3 snapshot files: $(find "$DIR/n3" -maxdepth 1 -name 'snap-*' -type f -printf '%f %s bytes; ')"
echo "node 3 five seconds later: RSS $(($(status_kb 3 VmRSS) / 1024)) MB, anonymous $(($(status_kb 3 RssAnon) / 1024)) MB"
