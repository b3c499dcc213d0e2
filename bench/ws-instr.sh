#!/bin/bash
# User-space instructions per 1 KiB WebSocket echo (callgrind), lem and the
# tokio-tungstenite floor side by side: a figure the load of a shared
# machine does not move, where bench/ws.sh's msgs/s do. Each server runs
# under valgrind twice: once idle (started, then stopped), once under
# bench/ws_echo_tokio's load (CONNS connections, each sending a 1 KiB text
# message and waiting for its echo, for DUR seconds); the difference is
# divided by the messages echoed. Kernel work is not counted.
# usage: bench/ws-instr.sh [server ...]   (servers: lem jit tokio; default all)
# env: LEM, LEM_JIT (release binaries), DUR (5), CONNS (20), PORT (20970),
#      OUT (/tmp/lem-ws-instr; the callgrind files stay there to annotate)
set -u
cd "$(dirname "$0")/.."
DUR=${DUR:-5}
CONNS=${CONNS:-20}
PORT=${PORT:-20970}
OUT=${OUT:-/tmp/lem-ws-instr}
LEM=${LEM:-target/release/lem}
LEM_JIT=${LEM_JIT:-target/jit/release/lem}
mkdir -p "$OUT"
command -v valgrind > /dev/null || { echo "bench/ws-instr.sh: needs valgrind" >&2; exit 1; }
cargo build --release --quiet --manifest-path bench/ws_echo_tokio/Cargo.toml || exit 1
peer=bench/ws_echo_tokio/target/release/ws_echo_tokio

cmd() { # $1 server, $2 port -> the command line
	case $1 in
	lem) echo "$LEM bench/ws_echo.lua $2";;
	jit) echo "$LEM_JIT bench/ws_echo.lua $2";;
	tokio) echo "$peer serve $2";;
	*) return 1;;
	esac
}

measure() { # $1 server, $2 seconds of load (0: idle) -> instructions, messages
	local c f n=0 port=$((PORT++))
	c=$(cmd "$1" "$port") || return 1
	f="$OUT/callgrind-$1-$2.out"
	rm -f "$f"
	# shellcheck disable=SC2086
	valgrind --tool=callgrind --callgrind-out-file="$f" $c > "$OUT/valgrind-$1-$2.log" 2>&1 &
	local pid=$!
	for _ in $(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
	if [ "$2" -gt 0 ]; then
		n=$("$peer" load "ws://127.0.0.1:$port/" "$CONNS" "$2" 1024 | sed -n 's/.*(\([0-9]*\) messages).*/\1/p')
	fi
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	echo "$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}') $n"
}

echo '| server | messages | instructions/message | × tokio-tungstenite |'
echo '|---|---|---|---|'
declare -A per
for s in ${*:-tokio lem jit}; do
	read -r base _ < <(measure "$s" 0)
	read -r tot n < <(measure "$s" "$DUR")
	[ -n "${tot:-}" ] && [ -n "${base:-}" ] && [ "${n:-0}" -gt 0 ] || { echo "| $s | failed | | |"; continue; }
	per[$s]=$(( (tot - base) / n ))
	ratio=-
	[ -n "${per[tokio]:-}" ] && ratio=$(awk -v a="${per[$s]}" -v b="${per[tokio]}" 'BEGIN{printf "%.2f", a / b}')
	echo "| $s | $n | ${per[$s]} | $ratio |"
done
