#!/usr/bin/env bash
# Memory per idle WebSocket: the lem echo server's RSS before and while N
# clients (default 1000, another lem process) hold connections open and
# ping once a second for SECS seconds (default 20).
#   bench/ws_idle.sh [N [SECS]]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
secs=${2:-20}
lem=${LEM:-target/release/lem}
[ -x "$lem" ] || cargo build --release
ulimit -n $((n + 256))
"$lem" bench/ws_echo.lua 9031 >/dev/null &
srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT
sleep 0.5
rss() { awk '/VmRSS/ {print $2}' /proc/"$srv"/status; }
before=$(rss)
"$lem" bench/ws_idle_client.lua ws://127.0.0.1:9031/ "$n" "$secs" | while read -r line; do
	echo "client: $line"
	if [ "${line#* }" = connected ]; then
		sleep 2
		during=$(rss)
		echo "server RSS: $before kB idle, $during kB with $n WebSockets: $(( (during - before) * 1024 / n )) bytes each"
	fi
done
