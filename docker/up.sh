#!/usr/bin/env bash
# Builds the raftmq:local image from this checkout and starts the 5-node
# compose cluster in the foreground (Ctrl-C stops it). Extra arguments go to
# `up` (e.g. -d). Environment: SUBMIT_EVERY (the client's period, 10s).
set -euo pipefail
cd "$(dirname "$0")"
./build-image.sh
if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=(docker-compose); fi
exec "${COMPOSE[@]}" -f docker-compose.yml up "$@"
