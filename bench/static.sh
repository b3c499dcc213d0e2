#!/bin/bash
# Static files: hathaway.static against nginx serving the same files, in
# one run (see bench/README.md "Static files"). A 4 KB and a 1 MB file;
# the server on CPU 0, wrk on CPU 1 (taskset -c 1 wrk -t1 -c$CONNS).
# Both servers: one process, sendfile, keep-alive, no access log, ETag
# and Last-Modified on (as hathaway.static sends them).
# usage: bench/static.sh [runtime ...]   runtimes: nginx lem jit (default: all)
# env: LEM, LEM_JIT (release binaries; built here if missing), DUR (10),
#      CONNS (64), PORT (20600), OUT (/tmp/lem-static-bench),
#      INSTR=1: user-space instructions per request instead (callgrind, all
#      threads, the pool's too: a figure a loaded machine cannot move). Each
#      server runs under valgrind twice per file, for one request and under
#      wrk for DUR seconds; the difference is divided by the requests served.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/lem-static-bench}
PORT=${PORT:-20600}
# deps(), quiet(), start/stop, $LEM, $LEM_JIT and $ROOT from bench/http.sh
# (cmd below replaces its servers).
# shellcheck source=/dev/null
CMD_ONLY=1 source "$HERE/http.sh"
mkdir -p "$OUT/www/static" "$OUT/ngx/tmp"

head -c 4096 /dev/urandom > "$OUT/www/static/4k.bin"
head -c 1048576 /dev/urandom > "$OUT/www/static/1m.bin"

cat > "$OUT/static.lua" <<LUA
local hathaway = require 'lem.hathaway'
local app = hathaway.new()
app:GETM('^/static/(.*)$', hathaway.static('$OUT/www/static'))
app:run('127.0.0.1', tonumber(arg[1]))
LUA

cmd() { # $1 runtime -> the server command for $PORT
	case $1 in
	nginx)
		cat > "$OUT/ngx/nginx.conf" <<NGX
worker_processes 1;
master_process off;
daemon off;
pid $OUT/ngx/nginx.pid;
error_log $OUT/ngx/error.log warn;
worker_rlimit_nofile 65536;
events { use epoll; worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 100000000;
  sendfile on;
  tcp_nopush on;
  etag on;
  client_body_temp_path $OUT/ngx/tmp;
  proxy_temp_path $OUT/ngx/tmp;
  fastcgi_temp_path $OUT/ngx/tmp;
  uwsgi_temp_path $OUT/ngx/tmp;
  scgi_temp_path $OUT/ngx/tmp;
  types { application/octet-stream bin; }
  server {
    listen 127.0.0.1:$PORT backlog=4096;
    root $OUT/www;
  }
}
NGX
		echo "nginx -p $OUT/ngx -c $OUT/ngx/nginx.conf";;
	lem) echo "$LEM $OUT/static.lua $PORT";;
	jit) echo "$LEM_JIT $OUT/static.lua $PORT";;
	*) echo "unknown runtime $1" >&2; return 1;;
	esac
}
trap stop EXIT

# instr $1 runtime, $2 file -> instructions per request (see INSTR above).
instr() {
	local c f n pid t=() reqs=()
	c=$(cmd "$1") || return 1
	for n in 0 "$DUR"; do
		PORT=$((PORT + 1))
		c=$(cmd "$1")
		f="$OUT/callgrind-$1-$2-$n.out"
		rm -f "$f"
		# shellcheck disable=SC2086
		taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$f" $c > "$OUT/valgrind-$1.log" 2>&1 &
		pid=$!
		for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
		if [ "$n" = 0 ]; then
			curl -s -o /dev/null "http://127.0.0.1:$PORT/static/$2"
			reqs+=(1)
		else
			reqs+=("$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${n}s" "http://127.0.0.1:$PORT/static/$2" | awk '/requests in/{print $1}')")
		fi
		kill -QUIT "$pid" 2>/dev/null; sleep 2; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
		t+=("$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')")
	done
	[ -n "${t[0]}" ] && [ -n "${t[1]}" ] && [ "${reqs[1]:-0}" -gt 1 ] &&
		echo $(((t[1] - t[0]) / (reqs[1] - reqs[0])))
}

if [ -n "${INSTR:-}" ]; then
	deps || exit 1
	echo '| server | file | instructions/request | × nginx |'
	echo '|---|---|---|---|'
	for f in 4k.bin 1m.bin; do
		ngx=
		for r in ${*:-nginx lem jit}; do
			per=$(instr "$r" "$f")
			[ "$r" = nginx ] && ngx=$per
			ratio=-; [ -n "$ngx" ] && [ -n "$per" ] && ratio=$(awk -v a="$per" -v b="$ngx" 'BEGIN{printf "%.2f", a / b}')
			echo "| $r | $f | ${per:-failed} | $ratio |"
		done
	done
	exit 0
fi

deps || { echo "bench/static.sh: could not install what it needs" >&2; exit 1; }
RES="$OUT/results.tsv"; : > "$RES"
for r in ${*:-nginx lem jit}; do
	start "$r" || continue
	for f in 4k.bin 1m.bin; do
		url="http://127.0.0.1:$PORT/static/$f"
		# The answer must be the file, whole.
		cmp -s <(curl -s "$url") "$OUT/www/static/$f" || { echo "$r: $f differs" >&2; continue; }
		quiet
		taskset -c 1 wrk -t1 -c"$CONNS" -d1s "$url" > /dev/null 2>&1 # warm up
		w=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "$url" 2>&1)
		rps=$(awk '/Requests\/sec/ {print $2}' <<<"$w")
		p99=$(awk '$1 == "99%" {print $2}' <<<"$w")
		err=$(grep -E 'Socket errors|Non-2xx' <<<"$w" | tr -s ' ' | tr '\n' ';')
		printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$f" "$rps" "$p99" "$err" | tee -a "$RES"
	done
	stop
done

# The table: req/s and p99 of each runtime and file, the ratio to nginx.
python3 - "$RES" <<'EOF'
import sys
rows, ngx = [], {}
for line in open(sys.argv[1]):
    f = line.rstrip('\n').split('\t')
    if len(f) < 4 or not f[2]:
        continue
    rows.append(f)
    if f[0] == 'nginx':
        ngx[f[1]] = float(f[2])
print('| server | file | req/s | MB/s | p99 | × nginx |')
print('|---|---|---|---|---|---|')
size = {'4k.bin': 4096, '1m.bin': 1 << 20}
for r, file, rps, p99, *_ in rows:
    rps = float(rps)
    ratio = f'{rps / ngx[file]:.2f}' if file in ngx else '-'
    print(f'| {r} | {file} | {rps:,.0f} | {rps * size[file] / 1e6:,.0f} | {p99} | {ratio} |')
EOF
