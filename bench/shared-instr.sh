#!/bin/bash
# User-space instructions per lem.shared operation, against nginx + lua's
# ngx.shared.DICT (bench/README.md "Shared dictionaries"): a figure the
# load of a shared machine does not move, where bench/shared.sh's rates
# do. Counted with valgrind's callgrind (perf stat has no hardware
# counters in a VM): each program runs with n=0 and n=200000 operations
# of one kind on 1,000 keys, and the difference is divided by n, so
# start-up does not count. One process, one worker.
# usage: bench/shared-instr.sh [config ...]
#   configs: nginx lem jit (default: all)
# env: as bench/http.sh (LEM, LEM_JIT, NGXLUA); N (200000)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/lem-shared-instr}
N=${N:-200000}
# $LEM, $LEM_JIT, $NGXLUA from bench/http.sh.
# shellcheck source=/dev/null
CMD_ONLY=1 source "$HERE/http.sh"
mkdir -p "$OUT/tmp"
command -v valgrind > /dev/null || { echo "bench/shared-instr.sh: needs valgrind" >&2; exit 1; }

ngx_conf() { # $1 op, $2 n -> the config file
	local f="$OUT/nginx-$1-$2.conf"
	cat > "$f" <<NGX
load_module $NGXLUA/usr/lib/nginx/modules/ndk_http_module.so;
load_module $NGXLUA/usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
master_process off;
daemon off;
pid $OUT/nginx.pid;
error_log $OUT/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  lua_package_path "$NGXLUA/usr/share/lua/5.1/?.lua;;";
  lua_shared_dict bench 64m;
  client_body_temp_path $OUT/tmp;
  proxy_temp_path $OUT/tmp;
  fastcgi_temp_path $OUT/tmp;
  uwsgi_temp_path $OUT/tmp;
  scgi_temp_path $OUT/tmp;
  init_worker_by_lua_block {
    local N, op = $2, '$1'
    local d = ngx.shared.bench
    local keys, counters = {}, {}
    for i = 1, 1000 do keys[i] = 'key' .. i; counters[i] = 'counter' .. i end
    ngx.timer.at(0, function()
      for i = 1, 1000 do d:set(keys[i], 'value'); d:incr(counters[i], 1, 0) end
      if op == 'set' then for i = 1, N do d:set(keys[i % 1000 + 1], 'value') end
      elseif op == 'get' then for i = 1, N do d:get(keys[i % 1000 + 1]) end
      elseif op == 'incr' then for i = 1, N do d:incr(counters[i % 1000 + 1], 1, 0) end
      elseif op == 'loop' then for i = 1, N do local _ = keys[i % 1000 + 1] end end
      io.open('$OUT/done', 'w'):close()
    end)
  }
}
NGX
	echo "$f"
}

ir() { # $1 config, $2 op, $3 n -> instructions
	local log="$OUT/vg.log"
	case $1 in
	lem|jit)
		local bin=$LEM; [ "$1" = jit ] && bin=$LEM_JIT
		valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$HERE/shared-ops.lua" "$2" "$3" > "$log" 2>&1;;
	nginx)
		local conf; conf=$(ngx_conf "$2" "$3")
		rm -f "$OUT/done"
		LD_LIBRARY_PATH=$NGXLUA/usr/lib/x86_64-linux-gnu valgrind --tool=callgrind \
			--callgrind-out-file=/dev/null nginx -p "$OUT" -c "$conf" > "$log" 2>&1 &
		local p=$!
		for _ in $(seq 1 600); do [ -e "$OUT/done" ] && break; sleep 0.2; done
		kill -TERM "$p"; wait "$p";;
	esac
	sed -n 's/.*Collected : *\([0-9]*\).*/\1/p' "$log"
}

echo '| config | loop | set | get | incr |'
echo '|---|---|---|---|---|'
for c in ${*:-nginx lem jit}; do
	row="| $c |"
	for op in loop set get incr; do
		a=$(ir "$c" "$op" 0); b=$(ir "$c" "$op" "$N")
		row="$row $(( (b - a) / N )) |"
	done
	echo "$row"
done
