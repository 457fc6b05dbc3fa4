#!/usr/bin/env bash
# raftmq's Kafka listener next to NATS JetStream on this machine, in one run: installs
# Debian's nats-server if missing, then, one system at a time, starts a 3-member cluster on
# loopback with its data in a temporary folder and loads it with the same concurrency of
# 100-byte records:
#   - raftmq: 3 nodes, fsync on; `--clients` Kafka producers, each with one Produce request
#     of one 64 KiB batch (595 records) in flight, acks=all;
#   - NATS: 3 servers, JetStream, a stream with 3 replicas and file storage; as many
#     connections, each publishing asynchronously with 595 publishes awaiting their ack.
# It prints each run and one table with acknowledged records/s of both and the ratio, and
# writes them as JSON. Everything it started is killed at the end (also on Ctrl-C).
# Note: JetStream does not fsync each message (nats-server flushes on its own schedule);
# raftmq fsyncs before every commit. Usage:
#   bench/kafka-compare-nats.sh [seconds per run, default 10] [clients, default 4] [extra raftmq bench flags]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
clients="${2:-4}"
shift 2 || shift $# || true
if ! command -v nats-server >/dev/null; then
  echo "nats-server not found: installing Debian's nats-server"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
  # The package may start a system nats-server on the default port; ours use free ports.
fi
cargo build --release -p raftmq
bin="${CARGO_TARGET_DIR:-target}/release/raftmq"
mkdir -p target/bench
# The bench and every process it starts share a new process group, so one kill ends them
# all, whatever happens to this script.
setsid "$bin" bench --protocol kafka --compare nats --spawn 3 \
  --clients "$clients" --value-size 100 --batch-bytes 65536 --acks all --duration "${seconds}s" \
  --json target/bench/kafka-compare-nats.json "$@" &
bench=$!
trap 'kill -9 -- -"$bench" 2>/dev/null || true' EXIT INT TERM
wait "$bench"
