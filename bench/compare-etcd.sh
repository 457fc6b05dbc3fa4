#!/usr/bin/env bash
# raftmq next to etcd on this machine, in one run: installs etcd if missing,
# starts a 3-node cluster of each (one at a time, fsync on, default timeouts),
# drives both with the same closed-loop load (1, 16, 64, 256 clients, 100-byte
# values; etcd through its own JSON gateway), kills the leader 10 times each,
# and prints one table with the ratio per row. Usage:
#   bench/compare-etcd.sh [seconds per run, default 10] [extra raftmq bench flags]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
shift || true
if ! command -v etcd >/dev/null; then
  echo "etcd not found: installing Debian's etcd-server"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
  # The package may start a system etcd on the default ports; ours use free ports.
fi
cargo build --release -p raftmq
mkdir -p target/bench
exec target/release/raftmq bench --compare etcd --spawn 3 \
  --clients 1,16,64,256 --value-size 100 --duration "${seconds}s" \
  --failover-rounds 10 --json target/bench/compare-etcd.json "$@"
