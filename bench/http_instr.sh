#!/bin/bash
# User-space instructions per HTTP request (callgrind), nginx+lua and lem
# side by side: a figure this noisy VM cannot move, unlike req/s. Each
# server runs under valgrind twice: once for startup alone (one request),
# once under `wrk -t1 -c$CONNS` for $DUR seconds; the difference is divided by
# the requests served. Kernel work is not counted (both servers make one
# read(2) and one writev(2) per request: see bench/README.md).
# usage: bench/http_instr.sh [runtime ...]   (runtimes as in bench/http.sh)
# env: DUR (5), PORT (20990), CONNS (2; 64 is what bench/http.sh loads
#      with: the loop then handles many connections per turn, as under load),
#      and those of bench/http.sh.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
DUR=${DUR:-5}
PORT=${PORT:-20990}
# Taken before bench/http.sh, whose default (64) is for its own load.
LOAD_CONNS=${CONNS:-2}
OUT=${OUT:-/tmp/lem-http-bench}
# The server commands (and nginx's config) come from bench/http.sh.
# shellcheck source=/dev/null
CMD_ONLY=1 source "$HERE/http.sh"
deps || exit 1
installed valgrind || DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends valgrind > /dev/null

measure() { # $1 runtime, $2 seconds of load (0: one request) -> instructions, requests
	local c f n=1
	c=$(cmd "$1") || return 1
	f="$OUT/callgrind-$1-$2.out"
	rm -f "$f"
	# shellcheck disable=SC2086
	valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$f" $c > "$OUT/valgrind-$1.log" 2>&1 &
	local pid=$!
	for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
	if [ "$2" -gt 0 ]; then
		n=$(wrk -t1 -c"$LOAD_CONNS" -d"${2}s" "http://127.0.0.1:$PORT/" | awk '/requests in/{print $1}')
	else
		curl -s -o /dev/null "http://127.0.0.1:$PORT/"
	fi
	pkill -QUIT -P "$pid" 2>/dev/null; kill -QUIT "$pid" 2>/dev/null; sleep 2; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
	echo "$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}') $n"
}

echo '| server | instructions/request | × nginx+lua |'
echo '|---|---|---|'
ngx=
for r in ${*:-nginx lem-server lem-hathaway jit-server jit-hathaway}; do
	PORT=$((PORT + 1))
	read -r base _ < <(measure "$r" 0)
	read -r tot n < <(measure "$r" "$DUR")
	[ -n "${tot:-}" ] && [ -n "${base:-}" ] && [ "${n:-0}" -gt 0 ] || { echo "| $r | failed | |"; continue; }
	per=$(( (tot - base) / n ))
	[ "$r" = nginx ] && ngx=$per
	ratio=-; [ -n "$ngx" ] && ratio=$(awk -v a="$per" -v b="$ngx" 'BEGIN{printf "%.2f", a / b}')
	echo "| $r | $per | $ratio |"
done
