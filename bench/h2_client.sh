#!/bin/bash
# The HTTP/2 client: requests per second over one multiplexed h2c
# connection (prior knowledge), CONC requests in flight, against one
# server (bench/h2_floor's, the `h2` crate answering a hello world) on
# CPU 0, each client on CPU 1 in turn: lem.http.client (both builds, from
# bench/h2_client.lua), Python httpx[http2] (bench/h2_client.py, in a
# venv it makes), and the raw `h2` crate as the floor (bench/h2_floor).
# See bench/README.md "HTTP/2 client".
# usage: bench/h2_client.sh
# env: LEM, LEM_JIT (the lem binaries: target/release/lem,
#      target/jit/release/lem), VENV (/tmp/lem-h2c-venv), N (requests,
#      20000), CONC (64), PORT (21600), FLOOR (the h2_floor binary)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
LEM=${LEM:-$ROOT/target/release/lem}
LEM_JIT=${LEM_JIT:-$ROOT/target/jit/release/lem}
VENV=${VENV:-/tmp/lem-h2c-venv}
N=${N:-20000}; CONC=${CONC:-64}; PORT=${PORT:-21600}
FLOOR=${FLOOR:-$HERE/h2_floor/target/release/h2_floor}

[ -x "$FLOOR" ] || cargo build --release -q --manifest-path "$HERE/h2_floor/Cargo.toml" || exit 1
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import httpx, h2' 2>/dev/null; then
	python3 -m venv "$VENV" && "$VENV/bin/pip" install -q 'httpx[http2]' || exit 1
fi

taskset -c 0 "$FLOOR" server "$PORT" &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done

run() { # $1 name, the rest: the command (given PORT N CONC)
	local name=$1; shift
	"$@" "$PORT" $((N / 10)) "$CONC" > /dev/null 2>&1 # warm-up
	local rps; rps=$("$@" "$PORT" "$N" "$CONC" 2>/dev/null | tail -1)
	echo "$name ${rps:-0}"
}

echo "# $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), N=$N CONC=$CONC"
{
	run h2-crate taskset -c 1 "$FLOOR" client
	[ -x "$LEM" ] && run lem taskset -c 1 "$LEM" "$HERE/h2_client.lua"
	[ -x "$LEM_JIT" ] && run lem-jit taskset -c 1 "$LEM_JIT" "$HERE/h2_client.lua"
	run httpx taskset -c 1 "$VENV/bin/python" "$HERE/h2_client.py"
} | awk 'BEGIN { print "| client | req/s | × h2 crate | × httpx |"; print "|---|---|---|---|" }
	{ name[NR] = $1; rps[NR] = $2; if ($1 == "h2-crate") floor = $2; if ($1 == "httpx") py = $2 }
	END { for (i = 1; i <= NR; i++)
		printf "| %s | %d | %.2f | %s |\n", name[i], rps[i], floor ? rps[i] / floor : 0,
			py ? sprintf("%.1f", rps[i] / py) : "-" }'
