#!/usr/bin/env bash
# lem.redis against redis-benchmark on one throwaway redis-server: GET/SET
# with 50 clients (-P 1) and a pipeline of 1,000 (-P 1000). Release build
# of the Lua 5.4 lem; one run, ratios in bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
dir=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >/dev/null &
pid=$!
trap 'kill $pid; rm -rf "$dir"' EXIT
sleep 0.5
echo "== redis-benchmark"
redis-benchmark -p "$port" -c 50 -n 200000 -P 1 -t set,get -q
redis-benchmark -p "$port" -c 1 -n 200000 -P 1000 -t set -q
echo "== lem"
target/release/lem bench/redis_load.lua "$port" 50 200000 1000 200
