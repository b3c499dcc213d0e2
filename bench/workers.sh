#!/bin/bash
# lem -w N against nginx + lua with worker_processes N, in one run (see
# bench/README.md "Workers"). Both cores are shared by the servers and wrk
# (wrk -t2 -c64, not pinned), so besides req/s the server's CPU time is
# measured (utime + stime of the supervisor or master and its workers,
# from /proc): requests per server CPU-second tell whether two workers
# cost more per request than one.
# usage: bench/workers.sh [config ...]
#   configs: nginx-1 nginx-2 lem-1 lem-2 jit-1 jit-2 (default: all)
# env: as bench/http.sh (LEM, LEM_JIT, NGXLUA, DUR, CONNS, PORT, OUT)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
CMD_ONLY=1 . "$HERE/http.sh"
OUT=${OUT:-/tmp/lem-workers-bench}
mkdir -p "$OUT"

ngx_conf() { # $1 workers -> the nginx command line
	mkdir -p "$OUT/ngx$1/tmp"
	sed -e "s#@NGXLUA@#$NGXLUA#g; s#@PORT@#$PORT#; s#@PREFIX@#$OUT/ngx$1#g" \
		-e "s#^worker_processes 1;#worker_processes $1;#; s#^master_process off;#master_process on;#" \
		-e "s#backlog=4096;#backlog=4096 reuseport;#" \
		"$PEERS_DIR/nginx.conf.in" > "$OUT/ngx$1/nginx.conf"
	echo "env LD_LIBRARY_PATH=$NGXLUA/usr/lib/x86_64-linux-gnu nginx -p $OUT/ngx$1 -c $OUT/ngx$1/nginx.conf"
}
wcmd() {
	case $1 in
	nginx-*) ngx_conf "${1#nginx-}";;
	lem-*) echo "$LEM -w ${1#lem-} $ROOT/examples/hello.lua $PORT";;
	jit-*) echo "$LEM_JIT -w ${1#jit-} $ROOT/examples/hello.lua $PORT";;
	*) echo "unknown config $1" >&2; return 1;;
	esac
}
# CPU ticks (utime + stime) of a process and its children.
ticks() {
	local t=0 p
	for p in "$1" $(pgrep -P "$1"); do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo $t
}

deps || { echo "bench/workers.sh: could not install what it needs" >&2; exit 1; }
HZ=$(getconf CLK_TCK)
RES="$OUT/results.tsv"; : > "$RES"
for r in ${*:-nginx-1 nginx-2 lem-1 lem-2 jit-1 jit-2}; do
	quiet
	PORT=$((PORT + 1))
	c=$(wcmd "$r") || continue
	$c > "$OUT/server-$r.log" 2>&1 &
	SP=$!
	for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
	sleep 0.5
	wrk -t2 -c"$CONNS" -d1s "http://127.0.0.1:$PORT/" > /dev/null 2>&1 # warm up
	t1=$(ticks "$SP")
	w=$(wrk -t2 -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$PORT/" 2>&1)
	t2=$(ticks "$SP")
	kill "$SP"; wait "$SP" 2>/dev/null
	rps=$(echo "$w" | awk '/Requests\/sec/{print $2}')
	p50=$(echo "$w" | awk '$1=="50%"{print $2}')
	p99=$(echo "$w" | awk '$1=="99%"{print $2}')
	reqs=$(echo "$w" | awk '/requests in/{print $1}')
	cpu=$(awk -v a="$t1" -v b="$t2" -v hz="$HZ" 'BEGIN{printf "%.2f", (b - a) / hz}')
	err=$(echo "$w" | grep -E 'Socket errors|Non-2xx' | tr -s ' ' | tr '\n' ';')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$rps" "$p50" "$p99" "$reqs" "$cpu" "$err" | tee -a "$RES"
done

python3 - "$RES" <<'PY'
import re, sys
def ms(v):
    m = re.match(r'([\d.]+)(us|ms|s)$', v or '')
    return float(m.group(1)) * {'us': 0.001, 'ms': 1, 's': 1000}[m.group(2)] if m else float('nan')
rows = {}
for line in open(sys.argv[1]):
    f = line.rstrip('\n').split('\t')
    if len(f) >= 6 and f[1]:
        rows[f[0]] = (float(f[1]), ms(f[2]), ms(f[3]), int(f[4]), float(f[5]))
print('| config | req/s | p50 ms | p99 ms | server CPU s | req per server CPU-s | × 1 worker (per CPU-s) | × nginx same N (req/s) |')
print('|---|---|---|---|---|---|---|---|')
for r, (rps, p50, p99, n, cpu) in rows.items():
    kind, w = r.rsplit('-', 1)
    per = n / cpu if cpu else float('nan')
    one = rows.get(kind + '-1')
    x1 = per / (one[3] / one[4]) if one and one[4] else float('nan')
    ngx = rows.get('nginx-' + w)
    xn = rps / ngx[0] if ngx else float('nan')
    print(f'| {r} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {cpu:.2f} | {per:,.0f} | {x1:.2f} | {xn:.2f} |')
PY
