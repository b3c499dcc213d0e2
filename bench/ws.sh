#!/usr/bin/env bash
# WebSocket echo: lem (bench/ws_echo.lua, release build) against the
# tokio-tungstenite floor (bench/ws_echo_tokio, one current-thread runtime),
# both driven by the same load generator (bench/ws_echo_tokio load/bulk):
# 1 KiB text messages over CONNS connections (default 100) for SECS seconds
# (default 5), messages/s; then one 64 MiB binary message echoed, MB/s.
#   bench/ws.sh [CONNS [SECS]]
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-100}
secs=${2:-5}
lem=${LEM:-target/release/lem}
[ -x "$lem" ] || cargo build --release
cargo build --release --quiet --manifest-path bench/ws_echo_tokio/Cargo.toml
peer=bench/ws_echo_tokio/target/release/ws_echo_tokio

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
"$lem" bench/ws_echo.lua 9011 >/dev/null &
pids+=($!)
"$peer" serve 9012 >/dev/null &
pids+=($!)
sleep 0.5

for which in "lem ws://127.0.0.1:9011/" "tokio-tungstenite ws://127.0.0.1:9012/"; do
	set -- $which
	echo "$1: $("$peer" load "$2" "$conns" "$secs" 1024)"
done
for which in "lem ws://127.0.0.1:9011/" "tokio-tungstenite ws://127.0.0.1:9012/"; do
	set -- $which
	echo "$1:"
	"$peer" bulk "$2" 64 | sed 's/^/  /'
done
for p in "${pids[@]}"; do
	echo "peak RSS of pid $p: $(grep VmHWM /proc/"$p"/status | awk '{print $2, $3}')"
done
