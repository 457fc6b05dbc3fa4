#!/usr/bin/env bash
# Builds the `raftmq:local` Docker image from this checkout, pulling nothing:
# builds the release binary on the host, stages it with the shared libraries
# it links (as `ldd` lists them, plus the dynamic loader) into a root file
# system, and `docker build`s a FROM-scratch image holding only that.
#
#   docker/build-image.sh             # cargo build --release, then the image
#   RAFTMQ_BIN=path docker/build-image.sh   # use an already built binary
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${RAFTMQ_IMAGE:-raftmq:local}
BIN=${RAFTMQ_BIN:-}
if [ -z "$BIN" ]; then
    cargo build --release -p raftmq --quiet
    BIN="${CARGO_TARGET_DIR:-target}/release/raftmq"
fi
[ -x "$BIN" ] || { echo "build-image: no raftmq binary at $BIN" >&2; exit 1; }

STAGE=docker/.build
rm -rf "$STAGE"
mkdir -p "$STAGE/rootfs/etc" "$STAGE/rootfs/data"
cp "$BIN" "$STAGE/rootfs/raftmq"
# The release profile keeps debug info for profiling; the image does not need it.
if command -v strip >/dev/null 2>&1; then strip --strip-debug "$STAGE/rootfs/raftmq"; fi
# Every absolute path ldd prints is a library (or the loader) the binary needs.
# A static binary has none, and then nothing is copied.
for lib in $(ldd "$BIN" 2>/dev/null | grep -o '/[^ ]*' || true); do
    mkdir -p "$STAGE/rootfs$(dirname "$lib")"
    cp -L "$lib" "$STAGE/rootfs$lib"
done
# Resolve service names through Docker's embedded DNS (glibc reads this).
echo "hosts: files dns" > "$STAGE/rootfs/etc/nsswitch.conf"
cp docker/Dockerfile "$STAGE/Dockerfile"
docker build --quiet -t "$IMAGE" "$STAGE" >/dev/null
echo "build-image: $IMAGE ($(du -sh "$STAGE/rootfs" | cut -f1) of binary and libraries)"
