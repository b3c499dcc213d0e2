#!/usr/bin/env bash
# lem.redis against redis-benchmark and against nginx + lua with OpenResty's
# redis client (Debian's lua-nginx-redis, `nginx.redis`), on one throwaway
# redis-server: GET/SET with 50 clients (-P 1) and a pipeline of 1,000
# (-P 1000). nginx's side is one worker whose timer runs 50 light threads
# (ngx.thread), one connection each, as bench/redis_load.lua runs 50
# coroutines. Release build of the Lua 5.4 lem (LEM to use another); one
# run, ratios in bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=$PWD/bench
LEM=${LEM:-target/release/lem}
[ -x "$LEM" ] || cargo build --release -q
dir=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >/dev/null &
pid=$!
ngx=
trap 'kill $pid ${ngx:-} 2>/dev/null; rm -rf "$dir"' EXIT
sleep 0.5
echo "== redis-benchmark"
redis-benchmark -p "$port" -c 50 -n 200000 -P 1 -t set,get -q
redis-benchmark -p "$port" -c 1 -n 200000 -P 1000 -t set -q
echo "== lem"
"$LEM" bench/redis_load.lua "$port" 50 200000 1000 200

echo "== nginx + lua, nginx.redis (lua-nginx-redis)"
# deps() and $NGXLUA (nginx's lua module unpacked) from bench/http.sh.
set +eu
# shellcheck source=/dev/null
CMD_ONLY=1 source "$HERE/http.sh"
deps || { echo "bench/db_redis.sh: could not install nginx's lua module" >&2; exit 1; }
set -eu
if [ ! -f "$NGXLUA/usr/share/lua/5.1/nginx/redis.lua" ]; then
	d=$(mktemp -d)
	(cd "$d" && apt-get download -qq lua-nginx-redis 2>/dev/null) || { echo "no lua-nginx-redis" >&2; exit 1; }
	for f in "$d"/*.deb; do dpkg -x "$f" "$NGXLUA"; done
	rm -rf "$d"
fi
out="$dir/nginx-results"
: > "$out"
chmod 755 "$dir"; chmod 666 "$out" # nginx's worker runs as nobody
mkdir -p "$dir/ngx/tmp"
cat > "$dir/ngx/nginx.conf" <<NGX
load_module $NGXLUA/usr/lib/nginx/modules/ndk_http_module.so;
load_module $NGXLUA/usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
daemon off;
pid $dir/ngx/nginx.pid;
error_log $dir/ngx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  lua_package_path "$NGXLUA/usr/share/lua/5.1/?.lua;;";
  client_body_temp_path $dir/ngx/tmp;
  proxy_temp_path $dir/ngx/tmp;
  fastcgi_temp_path $dir/ngx/tmp;
  uwsgi_temp_path $dir/ngx/tmp;
  scgi_temp_path $dir/ngx/tmp;
  init_worker_by_lua_block {
    local redis = require 'nginx.redis'
    local C, N, out = 50, 200000, '$out'
    local function run(cmd)
      local per = math.floor(N / C)
      ngx.update_time()
      local t0 = ngx.now()
      local threads = {}
      for c = 1, C do
        threads[c] = ngx.thread.spawn(function()
          local r = redis:new()
          r:set_timeout(10000)
          assert(r:connect('127.0.0.1', $port))
          local key = 'key:' .. c
          for _ = 1, per do
            if cmd == 'set' then assert(r:set(key, 'xxx')) else assert(r:get(key)) end
          end
          r:close()
        end)
      end
      for c = 1, C do assert(ngx.thread.wait(threads[c])) end
      ngx.update_time()
      local f = io.open(out, 'a')
      f:write(('nginx.redis %s: %.0f requests per second\n'):format(cmd:upper(), per * C / (ngx.now() - t0)))
      f:close()
    end
    ngx.timer.at(0, function()
      run('set')
      run('get')
    end)
  }
  server {
    listen 127.0.0.1:$((port + 1));
    location / { return 204; }
  }
}
NGX
env LD_LIBRARY_PATH="$NGXLUA/usr/lib/x86_64-linux-gnu" nginx -p "$dir/ngx" -c "$dir/ngx/nginx.conf" &
ngx=$!
for _ in $(seq 1 600); do
	[ "$(wc -l < "$out")" -ge 2 ] && break
	sleep 0.1
done
cat "$out"
[ "$(wc -l < "$out")" -ge 2 ] || { echo "nginx gave no result:" >&2; cat "$dir/ngx/error.log" >&2; exit 1; }
