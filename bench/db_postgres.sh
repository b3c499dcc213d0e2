#!/usr/bin/env bash
# lem.postgres against asyncpg (PyPI, on uvloop when it installs) and
# psycopg, and a raw tokio-postgres loop (the floor, bench/pg_floor_tokio),
# on one throwaway cluster: `SELECT $1::int` round trips per second
# with 1 and 32 concurrent clients over a pool, and a 1,000,000-row SELECT
# (time and peak RSS). lem runs the round trips twice: with its statement
# cache (the default) and without (`statement_cache = false`: Parse with
# every call). Release build of the Lua 5.4 lem; one run, ratios in
# bench/README.md "PostgreSQL".
# env: N (round trips per client count, 20000), CARGO_TARGET_DIR, LEM_BEFORE
# (another lem binary, say an earlier commit's, run the same way but with
# its default options, labelled "before")
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q
N=${N:-20000}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d /tmp/lem-pgbench-XXXXXX)
as=()
if [ "$(id -u)" = 0 ]; then chown nobody "$dir"; as=(runuser -u nobody --); fi
"${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 --locale=C >/dev/null
port=$((20000 + RANDOM % 20000))
"${as[@]}" "$bin/postgres" -D "$dir/data" -k "$dir" -p "$port" -c listen_addresses=127.0.0.1 \
	-c fsync=off -c max_connections=100 >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; sleep 0.5; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -S "$dir/.s.PGSQL.$port" ] && break; sleep 0.1; done
sleep 0.5
venv=${VENV:-/tmp/lem-pgbench-venv}
if [ ! -x "$venv/bin/python" ]; then
	python3 -m venv "$venv" && "$venv/bin/pip" install -q asyncpg uvloop 'psycopg[binary]' >/dev/null
fi
cat > "$dir/bench.lua" <<'LUA'
local postgres, utils = require 'lem.postgres', require 'lem.utils'
local conninfo, n, before = arg[1], tonumber(arg[2]), arg[3] == 'before'
local runs = { { 1, 100, '' }, { 32, 100, '' }, { 1, false, ' (no cache)' }, { 32, false, ' (no cache)' } }
if before then runs = { { 1, nil, ' (before)' }, { 32, nil, ' (before)' } } end
for _, run in ipairs(runs) do
	local conc, cache, label = run[1], run[2], run[3]
	local pool = postgres.pool(conninfo, { size = conc, statement_cache = cache })
	local left, t0 = n, utils.updatenow()
	local running = conc
	for _ = 1, conc do
		utils.spawn(function()
			while left > 0 do
				left = left - 1
				assert(pool:exec('SELECT $1::int', left))
			end
			running = running - 1
		end)
	end
	while running > 0 do utils.newsleeper():sleep(0.01) end
	print(('lem%s %d clients: %.0f round trips/s'):format(label, conc, n / (utils.updatenow() - t0)))
	pool:close()
end
local db = assert(postgres.connect(conninfo))
local t0 = utils.updatenow()
local r = assert(db:exec('SELECT i, md5(i::text) FROM generate_series(1, 1000000) i'))
assert(#r == 1000000)
print(('lem%s 1,000,000 rows: %.2f s'):format(before and ' (before)' or '', utils.updatenow() - t0))
LUA
cat > "$dir/bench.py" <<'PY'
import asyncio, sys, time
import asyncpg
try:
    import uvloop; uvloop.install(); loop = 'uvloop'
except ImportError:
    loop = 'asyncio'
dsn, n = sys.argv[1], int(sys.argv[2])
async def main():
    for conc in (1, 32):
        pool = await asyncpg.create_pool(dsn, min_size=conc, max_size=conc)
        left = n
        async def client():
            nonlocal left
            while left > 0:
                left -= 1
                await pool.fetchval('SELECT $1::int', left)
        t0 = time.perf_counter()
        await asyncio.gather(*[client() for _ in range(conc)])
        print(f'asyncpg ({loop}) {conc} clients: {n / (time.perf_counter() - t0):.0f} round trips/s')
        await pool.close()
    c = await asyncpg.connect(dsn)
    t0 = time.perf_counter()
    rows = await c.fetch('SELECT i, md5(i::text) FROM generate_series(1, 1000000) i')
    assert len(rows) == 1000000
    print(f'asyncpg 1,000,000 rows: {time.perf_counter() - t0:.2f} s')
asyncio.run(main())
PY
cat > "$dir/psy.py" <<'PY'
import sys, time, psycopg
dsn, n = sys.argv[1], int(sys.argv[2])
with psycopg.connect(dsn) as c:
    t0 = time.perf_counter()
    for i in range(n):
        c.execute('SELECT %s::int', (i,)).fetchone()
    print(f'psycopg 1 client: {n / (time.perf_counter() - t0):.0f} round trips/s')
PY
url="postgresql://postgres@127.0.0.1:$port/postgres"
/usr/bin/time -f 'lem peak RSS %M KiB' "$target/release/lem" "$dir/bench.lua" "host=127.0.0.1 port=$port user=postgres dbname=postgres" "$N"
if [ -n "${LEM_BEFORE:-}" ]; then
	/usr/bin/time -f 'lem (before) peak RSS %M KiB' "$LEM_BEFORE" "$dir/bench.lua" "host=127.0.0.1 port=$port user=postgres dbname=postgres" "$N" before
fi
/usr/bin/time -f 'asyncpg peak RSS %M KiB' "$venv/bin/python" "$dir/bench.py" "$url" "$N"
"$venv/bin/python" "$dir/psy.py" "$url" "$N"
floor=bench/pg_floor_tokio/target/release/pg_floor_tokio
[ -x "$floor" ] || CARGO_TARGET_DIR="$PWD/bench/pg_floor_tokio/target" cargo build --release -q --manifest-path bench/pg_floor_tokio/Cargo.toml
/usr/bin/time -f 'tokio-postgres peak RSS %M KiB' "$floor" "host=127.0.0.1 port=$port user=postgres dbname=postgres" "$N"
