#!/bin/bash
# HTTP hello world against nginx + lua, in one run (see bench/README.md "HTTP").
# Servers on CPU 0, wrk on CPU 1 (taskset -c 1 wrk -t1 -c64 -d10s); perf
# stat measures the server's CPU time per request alongside.
# usage: bench/http.sh [runtime ...]
#   runtimes: nginx limit lem-server lem-hathaway jit-server jit-hathaway (default: all)
# env: LEM, LEM_JIT (release binaries; built here if missing), LIMIT (the
#      raw tokio floor, bench/limit_tokio; built here if missing),
#      NGXLUA (where nginx's lua module is unpacked), DUR (10), CONNS (64),
#      RUNS (1), PORT (20500), OUT (/tmp/lem-http-bench)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PEERS_DIR=$HERE/peers
LEM=${LEM:-$ROOT/target/release/lem}
LEM_JIT=${LEM_JIT:-$ROOT/target/jit/release/lem}
LIMIT=${LIMIT:-$HERE/limit_tokio/target/release/limit_tokio}
NGXLUA=${NGXLUA:-/tmp/ngxlua/root}
OUT=${OUT:-/tmp/lem-http-bench}
DUR=${DUR:-10}; CONNS=${CONNS:-64}; RUNS=${RUNS:-1}
PORT=${PORT:-20500}
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null

apt=(apt-get)
[ "$(id -u)" -ne 0 ] && apt=(sudo apt-get)
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = 'install ok installed' ]; }

# wrk and nginx from Debian. The lua module is not installed but unpacked
# into $NGXLUA: libnginx-mod-http-lua conflicts with libluajit-5.1-2, which
# the LuaJIT peers of bench/io.sh (lua-luv, lua-cqueues) need.
deps() {
	local missing=()
	for p in wrk nginx libpcre3; do installed $p || missing+=($p); done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "installing ${missing[*]}" >&2
		DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
		# Debian starts the packaged nginx on port 80: not ours.
		systemctl stop nginx 2>/dev/null || service nginx stop >/dev/null 2>&1 || true
	fi
	if [ ! -f "$NGXLUA/usr/lib/nginx/modules/ngx_http_lua_module.so" ]; then
		echo "unpacking nginx's lua module into $NGXLUA" >&2
		local d; d=$(dirname "$NGXLUA")/debs; mkdir -p "$d" "$NGXLUA"
		(cd "$d" && apt-get download -qq libnginx-mod-http-lua libnginx-mod-http-ndk \
			lua-resty-core lua-resty-lrucache libluajit2-5.1-2) || return 1
		for f in "$d"/*.deb; do dpkg -x "$f" "$NGXLUA"; done
	fi
	# Built each time (a no-op when up to date): a stale binary would
	# measure old code, or lack a module the scripts need.
	[ "$LEM" = "$ROOT/target/release/lem" ] && (cd "$ROOT" && cargo build --release -q)
	[ "$LEM_JIT" = "$ROOT/target/jit/release/lem" ] &&
		(cd "$ROOT" && cargo build --release -q --no-default-features --features luajit --target-dir target/jit)
	[ -x "$LIMIT" ] || cargo build --release -q --manifest-path "$HERE/limit_tokio/Cargo.toml" ||
		echo "bench/limit_tokio does not build: limit skipped" >&2
}

# The hathaway hello: one exact route.
cat > "$OUT/hathaway_hello.lua" <<'EOF'
local hathaway = require 'lem.hathaway'
hathaway.import()
GET('/', function(_, res)
	res.headers['Content-Type'] = 'text/plain'
	res:add('Hello, World!\n')
end)
Hathaway('127.0.0.1', tonumber(arg[1]))
EOF

cmd() { # $1 runtime -> the server command for $PORT
	case $1 in
	nginx)
		mkdir -p "$OUT/ngx/tmp"
		sed -e "s#@NGXLUA@#$NGXLUA#g; s#@PORT@#$PORT#; s#@PREFIX@#$OUT/ngx#g" "$PEERS_DIR/nginx.conf.in" > "$OUT/ngx/nginx.conf"
		echo "env LD_LIBRARY_PATH=$NGXLUA/usr/lib/x86_64-linux-gnu nginx -p $OUT/ngx -c $OUT/ngx/nginx.conf";;
	limit) [ -x "$LIMIT" ] && echo "$LIMIT http $PORT";;
	lem-server) echo "$LEM $ROOT/examples/hello.lua $PORT";;
	lem-hathaway) echo "$LEM $OUT/hathaway_hello.lua $PORT";;
	jit-server) echo "$LEM_JIT $ROOT/examples/hello.lua $PORT";;
	jit-hathaway) echo "$LEM_JIT $OUT/hathaway_hello.lua $PORT";;
	*) echo "unknown runtime $1" >&2; return 1;;
	esac
}

# Wait (up to QUIET_MAX s) until the machine is idle: the VM is shared, and
# a build running elsewhere halves any figure.
quiet() {
	local _ u n s d t1 t2 i1 i2
	for _ in $(seq 1 "${QUIET_MAX:-60}"); do
		read -r _ u n s d _ < /proc/stat; t1=$((u + n + s + d)); i1=$d; sleep 1
		read -r _ u n s d _ < /proc/stat; t2=$((u + n + s + d)); i2=$d
		[ $((100 * (i2 - i1) / (t2 - t1 > 0 ? t2 - t1 : 1))) -ge 85 ] && return 0
	done
	echo "  (machine still busy, measuring anyway)" >&2
}

SP=
start() {
	PORT=$((PORT + 1))
	local c; c=$(cmd "$1") || return 1
	[ -n "$c" ] || return 1
	taskset -c 0 $c > "$OUT/server-$1.log" 2>&1 &
	SP=$!
	for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0; sleep 0.05; done
	echo "server $1 did not start (see $OUT/server-$1.log)" >&2; stop; return 1
}
stop() { kill "$SP" 2>/dev/null; wait "$SP" 2>/dev/null; SP=; }
# bench/http_instr.sh takes deps and cmd from here.
[ -n "${CMD_ONLY:-}" ] && return 0
trap stop EXIT

deps || { echo "bench/http.sh: could not install what it needs" >&2; exit 1; }
RES="$OUT/results.tsv"; : > "$RES"
for run in $(seq 1 "$RUNS"); do
	for r in ${*:-nginx limit lem-server lem-hathaway jit-server jit-hathaway}; do
		quiet
		start "$r" || continue
		taskset -c 1 wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$PORT/" > /dev/null 2>&1 # warm up
		# The server's CPU time per request (perf's task-clock): less moved
		# than req/s by other guests of the VM (no hardware counters here).
		perf stat -x, -e task-clock -p "$SP" -o "$OUT/perf-$r.txt" -- sleep "$DUR" 2>/dev/null &
		local_pp=$!
		w=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$PORT/" 2>&1)
		wait $local_pp
		stop
		rps=$(echo "$w" | awk '/Requests\/sec/{print $2}')
		p99=$(echo "$w" | awk '$1=="99%"{print $2}')
		reqs=$(echo "$w" | awk '/requests in/{print $1}')
		ipr=$(awk -F, -v n="${reqs:-0}" '/task-clock/ && n > 0 {printf "%.2f", $1 * 1000 / n}' "$OUT/perf-$r.txt" 2>/dev/null)
		err=$(echo "$w" | grep -E 'Socket errors|Non-2xx' | tr -s ' ' | tr '\n' ';')
		printf '%s\trun%s\t%s\t%s\t%s\t%s\n' "$r" "$run" "$rps" "$p99" "${ipr:-}" "$err" | tee -a "$RES"
	done
done

# The table: req/s and p99 of each runtime (median over runs), ratio to nginx.
python3 - "$RES" <<'EOF'
import re, sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    f = line.rstrip('\n').split('\t')
    if len(f) < 4 or not f[2]:
        continue
    m = re.match(r'([\d.]+)(us|ms|s)$', f[3])
    p99 = float(m.group(1)) * {'us': 0.001, 'ms': 1, 's': 1000}[m.group(2)] if m else None
    ipr = float(f[4]) if len(f) > 4 and f[4] else None
    rows.setdefault(f[0], []).append((float(f[2]), p99, ipr))
def med(r, i):
    v = [x[i] for x in rows[r] if x[i] is not None]
    return st.median(v) if v else None
ngx = med('nginx', 0) if 'nginx' in rows else None
ngx_i = med('nginx', 2) if 'nginx' in rows else None
print('| server | req/s | p99 ms | × nginx+lua (req/s) | server CPU µs/req | × nginx+lua (CPU/req) |')
print('|---|---|---|---|---|---|')
for r in rows:
    rps, p99, ipr = med(r, 0), med(r, 1), med(r, 2)
    ratio = f'{rps / ngx:.2f}' if ngx else '-'
    iratio = f'{ipr / ngx_i:.2f}' if ipr and ngx_i else '-'
    print(f'| {r} | {rps:,.0f} | {p99:.2f} | {ratio} | {ipr:.2f} | {iratio} |' if ipr else f'| {r} | {rps:,.0f} | {p99:.2f} | {ratio} | - | - |')
EOF
