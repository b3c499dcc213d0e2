#!/usr/bin/env bash
# Scheduler benchmarks: spawn/yield speed, memory of 100,000 sleeping
# coroutines, and the per-event cost with N parked coroutines (the garbage
# collector must not make it grow with N), and timer lateness. Runs both
# builds; prints one line per measurement. usage: bench/core.sh [--callgrind]
#   --callgrind: also count instructions per event with valgrind (slow, but
#   stable on a noisy machine).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q
cargo build --release -q --no-default-features --features luajit --target-dir target/jit
declare -A BIN=([lua54]=target/release/lem [luajit]=target/jit/release/lem)

for build in lua54 luajit; do
	lem=${BIN[$build]}
	echo "== $build"
	"$lem" bench/spawn_yield.lua 1000000
	/usr/bin/time -f "maxrss_kb=%M" "$lem" bench/sleep.lua 100000 2>&1
	if [ "$build" = lua54 ]; then
		/usr/bin/time -f "maxrss_kb=%M" "$lem" bench/sleep.lua 1000000 2>&1
	fi
	for n in 10 100 1000 10000 100000; do
		"$lem" bench/gc_parked.lua "$n" 1000000
	done
	"$lem" bench/timer_lateness.lua 500 1000
	if [ "${1:-}" = --callgrind ]; then
		for n in 10 1000 100000; do
			# instructions per event: difference of two runs / extra events
			a=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$lem" bench/gc_parked.lua "$n" 100000 2>&1 | sed -n 's/.*I *refs: *//p' | tr -d ,)
			b=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$lem" bench/gc_parked.lua "$n" 200000 2>&1 | sed -n 's/.*I *refs: *//p' | tr -d ,)
			echo "parked N=$n instructions_per_event=$(( (b - a) / 100000 ))"
		done
	fi
done
