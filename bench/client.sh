#!/bin/bash
# lem.http.client against Python httpx (async) and reqwest (the floor,
# bench/client_floor), in one run (see bench/README.md "HTTP client"):
# 64 coroutines / tasks on one client send GET requests to one keep-alive
# nginx serving a 13-byte body. nginx on CPU 0, the client on CPU 1.
# usage: bench/client.sh [client ...]   (lem jit httpx reqwest; default: all)
# env: N (requests, default 200000; httpx sends N/10), C (64), PORT (20700),
#      OUT (/tmp/lem-client-bench), LEM, LEM_JIT (release binaries)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LEM=${LEM:-$ROOT/target/release/lem}
LEM_JIT=${LEM_JIT:-$ROOT/target/jit/release/lem}
OUT=${OUT:-/tmp/lem-client-bench}
N=${N:-200000}; C=${C:-64}; PORT=${PORT:-20700}
mkdir -p "$OUT/tmp"
ulimit -n "$(ulimit -Hn)" 2>/dev/null

apt=(apt-get)
[ "$(id -u)" -ne 0 ] && apt=(sudo apt-get)
command -v nginx >/dev/null || {
	DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends nginx >/dev/null
	systemctl stop nginx 2>/dev/null || service nginx stop >/dev/null 2>&1 || true
}
[ "$LEM" = "$ROOT/target/release/lem" ] && (cd "$ROOT" && cargo build --release -q)
[ "$LEM_JIT" = "$ROOT/target/jit/release/lem" ] &&
	(cd "$ROOT" && cargo build --release -q --no-default-features --features luajit --target-dir target/jit)
cargo build --release -q --manifest-path "$HERE/client_floor/Cargo.toml" || exit 1
# httpx from PyPI, in a venv of the bench's own.
if [ ! -x "$OUT/venv/bin/python" ] || ! "$OUT/venv/bin/python" -c 'import httpx' 2>/dev/null; then
	python3 -m venv "$OUT/venv" && "$OUT/venv/bin/pip" install -q httpx || exit 1
fi

cat > "$OUT/nginx.conf" <<NGX
worker_processes 1;
master_process off;
daemon off;
pid $OUT/nginx.pid;
error_log $OUT/error.log warn;
events { use epoll; worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_temp_path $OUT/tmp;
  proxy_temp_path $OUT/tmp;
  fastcgi_temp_path $OUT/tmp;
  uwsgi_temp_path $OUT/tmp;
  scgi_temp_path $OUT/tmp;
  server {
    listen 127.0.0.1:$PORT;
    location / { default_type text/plain; return 200 'Hello, World!'; }
  }
}
NGX
taskset -c 0 nginx -p "$OUT" -c "$OUT/nginx.conf" &
NGINX=$!
trap 'kill $NGINX 2>/dev/null; wait $NGINX 2>/dev/null' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.1; done
URL=http://127.0.0.1:$PORT/

echo "== load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
printf 'client\trequests\tseconds\treq/s\n'
for client in "${@:-lem jit httpx reqwest}"; do
	for k in $client; do
		case $k in
		lem) line=$(taskset -c 1 "$LEM" "$HERE/client.lua" "$URL" "$N" "$C") ;;
		jit) line=$(taskset -c 1 "$LEM_JIT" "$HERE/client.lua" "$URL" "$N" "$C") ;;
		httpx) line=$(taskset -c 1 "$OUT/venv/bin/python" "$HERE/client_httpx.py" "$URL" $((N / 10)) "$C") ;;
		reqwest) line=$(taskset -c 1 "$HERE/client_floor/target/release/client_floor" "$URL" "$N" "$C") ;;
		*) echo "unknown client $k" >&2; exit 1 ;;
		esac
		printf '%s\t%s\n' "$k" "$line"
	done
done
