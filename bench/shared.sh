#!/bin/bash
# lem.shared against nginx + lua's ngx.shared.DICT, in one run (see
# bench/README.md "Shared dictionaries"): each worker does N set, N get
# and N incr on 1,000 keys of one dictionary, all workers at once (a
# barrier in the dictionary before each phase), one worker and two. lem's
# side is bench/shared.lua (which also times a message's round trip
# between two workers: nginx has no such thing); nginx's the same loops
# in a timer of each worker (init_worker_by_lua), ms clock (runs last
# about a second, so that is enough). Not pinned: two workers need both
# cores.
# usage: bench/shared.sh [config ...]
#   configs: nginx-1 nginx-2 lem-1 lem-2 jit-1 jit-2 (default: all)
# env: as bench/http.sh (LEM, LEM_JIT, NGXLUA, PORT, OUT); N (2000000)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/lem-shared-bench}
PORT=${PORT:-20700}
N=${N:-2000000}
# deps(), quiet(), $LEM, $LEM_JIT, $NGXLUA from bench/http.sh.
# shellcheck source=/dev/null
CMD_ONLY=1 source "$HERE/http.sh"
mkdir -p "$OUT"

ngx_conf() { # $1 workers, $2 results file -> the nginx command line
	local d="$OUT/ngx$1"
	mkdir -p "$d/tmp"
	cat > "$d/nginx.conf" <<NGX
load_module $NGXLUA/usr/lib/nginx/modules/ndk_http_module.so;
load_module $NGXLUA/usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes $1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  lua_package_path "$NGXLUA/usr/share/lua/5.1/?.lua;;";
  lua_shared_dict bench 64m;
  client_body_temp_path $d/tmp;
  proxy_temp_path $d/tmp;
  fastcgi_temp_path $d/tmp;
  uwsgi_temp_path $d/tmp;
  scgi_temp_path $d/tmp;
  init_worker_by_lua_block {
    local N, count, out = $N, $1, '$2'
    local id = ngx.worker.id() + 1
    local d = ngx.shared.bench
    local keys, counters = {}, {}
    for i = 1, 1000 do
      keys[i] = 'key' .. i
      counters[i] = 'counter' .. i
    end
    local function barrier(name)
      d:incr(name, 1, 0)
      while d:get(name) < count do ngx.sleep(0.001) end
    end
    local function phase(name, f)
      barrier(name)
      ngx.update_time()
      local t0 = ngx.now()
      f()
      ngx.update_time()
      local fh = io.open(out, 'a')
      fh:write(('%d\t%s\t%.0f\n'):format(id, name, N / (ngx.now() - t0)))
      fh:close()
    end
    ngx.timer.at(0, function()
      phase('set', function()
        for i = 1, N do d:set(keys[i % 1000 + 1], 'value') end
      end)
      phase('get', function()
        for i = 1, N do d:get(keys[i % 1000 + 1]) end
      end)
      phase('incr', function()
        for i = 1, N do d:incr(counters[i % 1000 + 1], 1, 0) end
      end)
    end)
  }
  server {
    listen 127.0.0.1:$PORT;
    location / { return 204; }
  }
}
NGX
	echo "env LD_LIBRARY_PATH=$NGXLUA/usr/lib/x86_64-linux-gnu nginx -p $d -c $d/nginx.conf"
}
scmd() { # $1 config, $2 results file -> the command line
	local bin w=${1#*-}
	case $1 in
	nginx-*) ngx_conf "$w" "$2"; return;;
	lem-*) bin=$LEM;;
	jit-*) bin=$LEM_JIT;;
	*) echo "unknown config $1" >&2; return 1;;
	esac
	if [ "$w" = 1 ]; then
		echo "$bin $HERE/shared.lua $N"
	else
		echo "$bin -w $w $HERE/shared.lua $N"
	fi
}

deps || { echo "bench/shared.sh: could not install what it needs" >&2; exit 1; }
RES="$OUT/results.tsv"; : > "$RES"
for r in ${*:-nginx-1 nginx-2 lem-1 lem-2 jit-1 jit-2}; do
	PORT=$((PORT + 1))
	f="$OUT/out-$r.tsv"; : > "$f"; chmod 666 "$f" # nginx's workers run as nobody
	c=$(scmd "$r" "$f") || continue
	w=${r#*-}
	want=$((3 * w)); [ "$w" -ge 2 ] && [ "${r%%-*}" != nginx ] && want=$((want + 1))
	quiet
	if [ "${r%%-*}" = nginx ]; then
		$c > "$OUT/server-$r.log" 2>&1 &
	else
		$c > "$f" 2>"$OUT/server-$r.log" &
	fi
	SP=$!
	for _ in $(seq 1 1200); do
		[ "$(wc -l < "$f")" -ge "$want" ] && break
		sleep 0.1
	done
	kill "$SP" 2>/dev/null; wait "$SP" 2>/dev/null
	[ "$(wc -l < "$f")" -ge "$want" ] || echo "$r: only $(wc -l < "$f") of $want results (see $OUT/server-$r.log)" >&2
	sed "s/^/$r\t/" "$f" | tee -a "$RES"
done

# The table: each operation's ops/s summed over the workers, the ratio to
# nginx with as many workers; then the round trips.
python3 - "$RES" <<'EOF'
import sys
ops, rtt, order = {}, {}, []
for line in open(sys.argv[1]):
    f = line.rstrip('\n').split('\t')
    if len(f) < 4:
        continue
    if f[0] not in order:
        order.append(f[0])
    if f[2] == 'rtt':
        rtt[f[0]] = (float(f[3]), float(f[4]))
    else:
        ops.setdefault(f[0], {}).setdefault(f[2], 0)
        ops[f[0]][f[2]] += float(f[3])
print('| config | set/s | get/s | incr/s | × nginx (set, get, incr) |')
print('|---|---|---|---|---|')
for c in order:
    if c not in ops:
        continue
    o = ops[c]
    peer = ops.get('nginx-' + c.split('-')[1])
    ratio = ', '.join(f'{o[k] / peer[k]:.2f}' for k in ('set', 'get', 'incr')) if peer and c in ops else '-'
    print(f"| {c} | {o['set']:,.0f} | {o['get']:,.0f} | {o['incr']:,.0f} | {ratio} |")
if rtt:
    print()
    print('| config | message round trip p50 µs | p99 µs |')
    print('|---|---|---|')
    for c, (p50, p99) in rtt.items():
        print(f'| {c} | {p50:.1f} | {p99:.1f} |')
EOF
