#!/bin/bash
# lem.io benchmarks against peers, in one run (see bench/README.md "lem.io").
# Server on CPU 0, load on CPU 1.  usage: bench/io.sh [echo|bulk|idle|all]
# env: LEM (our release binary), ECHOC, LIMIT (built from
#      ../shared/peer-bench/{echo-client,limit}), LUAJIT, RUNS (3), DUR (10),
#      IDLE_N (10000), PEERS ("limit luv cqueues")
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
PB=${PB:-$HERE/../../shared/peer-bench}
LEM=${LEM:-$HERE/../target/release/lem}
ECHOC=${ECHOC:-/tmp/echo-client/target/release/echo-client}
LIMIT=${LIMIT:-/tmp/limit/target/release/limit}
LUAJIT=${LUAJIT:-luajit}
RUNS=${RUNS:-3}; DUR=${DUR:-10}; IDLE_N=${IDLE_N:-10000}
PEERS=${PEERS:-"limit luv cqueues"}
PORT=${PORT:-19500}
ulimit -n "$(ulimit -Hn)" 2>/dev/null

cmd() { # $1 kind (echo|bulk) $2 runtime
	case "$1:$2" in
	echo:lem) echo "$LEM $HERE/io_echo.lua $PORT";;
	bulk:lem) echo "$LEM $HERE/io_bulk.lua $PORT";;
	*:limit) echo "$LIMIT echo $PORT";;
	*:luv) echo "$LUAJIT $PB/luv_echo.lua $PORT";;
	*:cqueues) echo "$LUAJIT $PB/cqueues_echo.lua $PORT";;
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
stop() { kill "$SP" 2>/dev/null; wait "$SP" 2>/dev/null; }
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
case ${1:-all} in
	echo) echo_bench;; bulk) bulk_bench;; idle) idle_bench;;
	all) echo_bench; bulk_bench; idle_bench;;
esac
