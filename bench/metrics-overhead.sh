#!/usr/bin/env bash
# What the per-request metrics cost: the same binary, a fresh 3-node cluster each run, 64
# clients of 100-byte writes, with the default `--metrics extensive` and with
# `--metrics basic` (no REST or gRPC request series), the two taking turns `rounds` times.
# Prints each run (writes/s and the nodes' CPU time per write, which a busy machine disturbs
# less than throughput) and the medians.
#   bench/metrics-overhead.sh [seconds per run, default 15] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"
rounds="${2:-3}"
cargo build --release -p raftmq
mkdir -p target/bench
run() {
  local level=$1 round=$2 out="target/bench/metrics-$1-$2.json"
  target/release/raftmq bench --spawn 3 --clients 64 --value-size 100 --duration "${seconds}s" \
    --json "$out" -- --metrics "$level" >/dev/null
  python3 - "$out" "$level" "$round" <<'EOF'
import json, sys
run = json.load(open(sys.argv[1]))[0]["runs"][0]
errors = sum(run["errors"].values())
print(f"round {sys.argv[3]} {sys.argv[2]:9} {run['per_second']:9.0f}/s  {run['cpu_us_per_op']:6.1f} us-cpu/write  p99 {run['latency_ms']['p99']:.2f} ms  errors {errors}")
EOF
}
for round in $(seq "$rounds"); do
  run extensive "$round"
  run basic "$round"
done | tee target/bench/metrics-overhead.txt
python3 - <<'EOF'
import statistics
rates = {"extensive": [], "basic": []}
cpu = {"extensive": [], "basic": []}
for line in open("target/bench/metrics-overhead.txt"):
    parts = line.split()
    rates[parts[2]].append(float(parts[3].rstrip("/s")))
    cpu[parts[2]].append(float(parts[4]))
with_, without = statistics.median(rates["extensive"]), statistics.median(rates["basic"])
print(f"median writes/s: extensive {with_:.0f}, basic {without:.0f}: {100 * (1 - with_ / without):+.1f}% fewer with the request metrics")
with_, without = statistics.median(cpu["extensive"]), statistics.median(cpu["basic"])
print(f"median CPU per write: extensive {with_:.1f} us, basic {without:.1f} us: {100 * (with_ / without - 1):+.1f}% more with the request metrics")
EOF
