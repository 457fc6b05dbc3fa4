#!/usr/bin/env bash
# raftmq next to etcd under wrk, the HTTP load generator nobody here wrote: the same
# 100-byte writes over keep-alive HTTP/1.1, 2 threads and 64 connections, then one
# connection, against a fresh 3-node cluster of each (fsync on, default timeouts), the
# systems taking turns, `rounds` times back to back. raftmq gets `PUT /message` (RRMQ's
# API) on its leader; etcd gets `POST /v3/kv/put` (its JSON gateway) on its leader.
# Installs wrk and etcd-server if missing. Prints one line per run and a table at the end.
#   bench/wrk-compare.sh [seconds per run, default 15] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"
rounds="${2:-3}"
base=27001   # raftmq's REST ports 27001-27003 (its control API 27000); etcd's 22379-22384
for port in 27000 27001 27002 27003 27101 27102 27103 22379 22380 22381 22382 22383 22384; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use: stop what listens there first" >&2
    exit 1
  fi
done
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v etcd >/dev/null || need+=(etcd-server)
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing ${need[*]} (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release -p raftmq
raftmq="$PWD/target/release/raftmq"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

value="$(printf 'x%.0s' $(seq 100))"
cat >"$work/raftmq.lua" <<EOF
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"topic":"wrk","message":"$value"}'
EOF
cat >"$work/etcd.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"key":"$(printf wrk | base64)","value":"$(printf '%s' "$value" | base64 -w0)"}'
EOF

# wrk's "Requests/sec" and the 50% and 99% latencies (in ms) as "rate p50 p99".
summarize() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
      return v
    }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    $1 == "Requests/sec:" { rate = $2 }
    /Non-2xx or 3xx responses/ { bad = $NF }
    END { printf "%.0f %.2f %.2f %d\n", rate, p50, p99, bad }' "$1"
}

# Runs wrk with `threads` and `conns` against `url` with `script`; leaves the summary in `out`.
load() {
  local threads=$1 conns=$2 url=$3 script=$4 out=$5
  wrk -t"$threads" -c"$conns" -d"${seconds}s" --latency -s "$script" "$url" >"$out.txt"
  summarize "$out.txt" >"$out"
  read -r rate p50 p99 bad <"$out"
  if [ "$bad" -gt 0 ]; then
    echo "  $bad answers were not 2xx: the run is void (see $out.txt)" >&2
    exit 1
  fi
}

wait_for() {
  local what=$1; shift
  for _ in $(seq 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "$what did not come up" >&2
  exit 1
}

raftmq_leader() {
  curl -sf http://127.0.0.1:$base/status | python3 -c '
import json, sys
s = json.load(sys.stdin)
addr = s.get("leader_address") or ""
print(addr if addr.startswith("http") else "http://" + addr if addr else "")' | grep .
}

run_raftmq() {
  local round=$1
  rm -rf "$work/raftmq"
  "$raftmq" dev --nodes 3 --base-port "$base" --data-dir "$work/raftmq" --fresh \
    >"$work/raftmq.log" 2>&1 </dev/null &
  local dev=$!
  pids+=("$dev")
  wait_for "raftmq's leader" raftmq_leader
  local leader
  leader="$(raftmq_leader)"
  curl -sf -X PUT -H 'content-type: application/json' -d '{"topic":"wrk"}' "$leader/topic" >/dev/null
  load 2 64 "$leader/message" "$work/raftmq.lua" "$work/r$round-raftmq-64"
  load 1 1 "$leader/message" "$work/raftmq.lua" "$work/r$round-raftmq-1"
  kill -INT "$dev"
  wait "$dev" 2>/dev/null || true
}

etcd_leader() {
  local best=""
  for port in 22379 22381 22383; do
    if curl -sf -X POST -d '{}' "http://127.0.0.1:$port/v3/maintenance/status" | python3 -c '
import json, sys
s = json.load(sys.stdin)
sys.exit(0 if s["leader"] == s["header"]["member_id"] else 1)'; then
      best="http://127.0.0.1:$port"
    fi
  done
  [ -n "$best" ] && echo "$best"
}

run_etcd() {
  local round=$1
  rm -rf "$work/etcd"
  mkdir -p "$work/etcd"
  local cluster="e1=http://127.0.0.1:22380,e2=http://127.0.0.1:22382,e3=http://127.0.0.1:22384"
  local started=()
  for i in 1 2 3; do
    local client=$((22377 + 2 * i)) peer=$((22378 + 2 * i))
    etcd --name "e$i" --data-dir "$work/etcd/e$i" \
      --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
      --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token wrk \
      >"$work/etcd/e$i.log" 2>&1 &
    started+=("$!")
    pids+=("$!")
  done
  wait_for "etcd's leader" etcd_leader
  local leader
  leader="$(etcd_leader)"
  load 2 64 "$leader/v3/kv/put" "$work/etcd.lua" "$work/r$round-etcd-64"
  load 1 1 "$leader/v3/kv/put" "$work/etcd.lua" "$work/r$round-etcd-1"
  kill "${started[@]}"
  wait "${started[@]}" 2>/dev/null || true
}

echo "wrk, ${seconds} s a run, $rounds rounds; 100-byte values; 3 nodes each, fsync on"
for round in $(seq "$rounds"); do
  run_raftmq "$round"
  read -r r_rate _ r_p99 _ <"$work/r$round-raftmq-64"
  read -r _ r1_p50 _ _ <"$work/r$round-raftmq-1"
  echo "round $round raftmq: 64 conns $r_rate/s p99 $r_p99 ms; 1 conn p50 $r1_p50 ms"
  run_etcd "$round"
  read -r e_rate _ e_p99 _ <"$work/r$round-etcd-64"
  read -r _ e1_p50 _ _ <"$work/r$round-etcd-1"
  echo "round $round etcd:   64 conns $e_rate/s p99 $e_p99 ms; 1 conn p50 $e1_p50 ms"
done

echo
echo "| round | raftmq writes/s | etcd writes/s | ratio | raftmq p99 | etcd p99 | p99 ratio | raftmq 1-conn p50 | etcd 1-conn p50 |"
echo "|---|---|---|---|---|---|---|---|---|"
for round in $(seq "$rounds"); do
  read -r r_rate _ r_p99 _ <"$work/r$round-raftmq-64"
  read -r e_rate _ e_p99 _ <"$work/r$round-etcd-64"
  read -r _ r1_p50 _ _ <"$work/r$round-raftmq-1"
  read -r _ e1_p50 _ _ <"$work/r$round-etcd-1"
  awk -v n="$round" -v rr="$r_rate" -v er="$e_rate" -v rp="$r_p99" -v ep="$e_p99" -v r1="$r1_p50" -v e1="$e1_p50" \
    'BEGIN { printf "| %d | %d | %d | %.1fx | %.2f ms | %.2f ms | %.2f | %.2f ms | %.2f ms |\n", n, rr, er, rr / er, rp, ep, rp / ep, r1, e1 }'
done
