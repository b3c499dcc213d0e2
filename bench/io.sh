#!/bin/bash
# lem.io benchmarks against peers, in one run (see bench/README.md "lem.io").
# Server on CPU 0, load on CPU 1.  usage: bench/io.sh [echo|bulk|idle|all]
# env: LEM (our release binary), ECHOC, LIMIT (the load client and the raw
#      tokio floor: bench/echo_client, bench/limit_tokio), LUAJIT, RUNS (3),
#      DUR (10), IDLE_N (10000), PEERS ("limit luv cqueues")
# Whatever is missing is built (lem, the two Rust tools) or installed from
# Debian (luajit, lua-luv, lua-cqueues, bc) first; a peer that still cannot
# run is left out.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LEM=${LEM:-$ROOT/target/release/lem}
ECHOC=${ECHOC:-$HERE/echo_client/target/release/echo_client}
LIMIT=${LIMIT:-$HERE/limit_tokio/target/release/limit_tokio}
LUAJIT=${LUAJIT:-luajit}
RUNS=${RUNS:-3}; DUR=${DUR:-10}; IDLE_N=${IDLE_N:-10000}
PEERS=${PEERS:-"limit luv cqueues"}
PORT=${PORT:-19500}
ulimit -n "$(ulimit -Hn)" 2>/dev/null

deps() {
	local missing=() p apt=(apt-get)
	[ "$(id -u)" -ne 0 ] && apt=(sudo apt-get)
	for p in luajit lua-luv lua-cqueues bc; do
		[ "$(dpkg-query -W -f='${Status}' $p 2>/dev/null)" = 'install ok installed' ] || missing+=($p)
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "installing ${missing[*]}" >&2
		DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
			echo "could not install ${missing[*]}: the peers that need them are left out" >&2
	fi
	[ -x "$LEM" ] || (cd "$ROOT" && cargo build --release -q) || return 1
	[ -x "$ECHOC" ] || cargo build --release -q --manifest-path "$HERE/echo_client/Cargo.toml" || return 1
	[ -x "$LIMIT" ] || cargo build --release -q --manifest-path "$HERE/limit_tokio/Cargo.toml" ||
		echo "bench/limit_tokio does not build: limit left out" >&2
}

cmd() { # $1 kind (echo|bulk) $2 runtime
	case "$1:$2" in
	echo:lem) echo "$LEM $HERE/io_echo.lua $PORT";;
	bulk:lem) echo "$LEM $HERE/io_bulk.lua $PORT";;
	*:limit) echo "$LIMIT echo $PORT";;
	*:luv) echo "$LUAJIT $HERE/peers/luv_echo.lua $PORT";;
	*:cqueues) echo "$LUAJIT $HERE/peers/cqueues_echo.lua $PORT";;
	esac
}
SP=
start() {
	PORT=$((PORT + 1))
	taskset -c 0 $(cmd "$1" "$2") > /tmp/io-bench-server.log 2>&1 &
	SP=$!
	for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0; sleep 0.05; done
	echo "server $2 did not start" >&2; return 1
}
stop() { kill "$SP" 2>/dev/null; wait "$SP" 2>/dev/null; SP=; }
rss() { awk '/^VmRSS/{print $2}' /proc/$SP/status; }

echo_bench() {
	for run in $(seq 1 $RUNS); do for r in lem $PEERS; do
		start echo $r || continue
		taskset -c 1 "$ECHOC" rt 127.0.0.1:$PORT 100 1 > /dev/null 2>&1
		printf 'echo\t%s\trun%s\t%s\n' $r $run "$(taskset -c 1 "$ECHOC" rt 127.0.0.1:$PORT 100 $DUR 2>&1)"
		stop
	done; done
}
bulk_bench() {
	for run in $(seq 1 $RUNS); do for r in lem $PEERS; do
		start bulk $r || continue
		printf 'bulk\t%s\trun%s\t%s\n' $r $run "$(timeout 120 taskset -c 1 "$ECHOC" bulk 127.0.0.1:$PORT 1024 2>&1 | tail -1)"
		stop
	done; done
}
idle_bench() {
	for run in $(seq 1 $RUNS); do for r in lem $PEERS; do
		start echo $r || continue
		sleep 0.3; local before; before=$(rss)
		local t0; t0=$(date +%s.%N)
		timeout 120 taskset -c 1 "$ECHOC" idle 127.0.0.1:$PORT $IDLE_N 4 > /tmp/io-bench-idle.log 2>&1 & local cp=$!
		for _ in $(seq 1 1200); do grep -q READY /tmp/io-bench-idle.log && break; sleep 0.05; done
		local t; t=$(echo "$(date +%s.%N) - $t0" | bc)
		sleep 0.5; local after; after=$(rss)
		printf 'idle\t%s\trun%s\tconns=%s\tbytes_per_conn=%s\tconnect_and_echo_all_s=%s\t%s\n' $r $run $IDLE_N \
			$(( (after - before) * 1024 / IDLE_N )) "$t" "$(grep READY /tmp/io-bench-idle.log)"
		wait $cp; stop
	done; done
}
deps || { echo "bench/io.sh: could not build what it needs" >&2; exit 1; }
case ${1:-all} in
	echo) echo_bench;; bulk) bulk_bench;; idle) idle_bench;;
	all) echo_bench; bulk_bench; idle_bench;;
esac
