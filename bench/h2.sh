#!/bin/bash
# HTTP/2 hello world: h2load -c64 -m10 against nginx + lua (`http2` on the
# listen line) and lem.http.server, in cleartext (prior knowledge) and
# over TLS, in one run (see bench/README.md "HTTP/2"). Servers on CPU 0,
# h2load on CPU 1.
# usage: bench/h2.sh [runtime ...]   runtimes: nginx lem jit (default: all)
# env: LEM, LEM_JIT, NGXLUA, OUT as for bench/http.sh; N (requests per
#      run, 200000), CONNS (64), STREAMS (10), PORT (21500);
#      INSTR=1: user-space instructions per request instead of req/s (the
#      server under callgrind, once for one request and once for N, the
#      difference divided by N - 1: a figure a shared VM cannot move;
#      N defaults to 10000 then, CONNS to 4)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
INSTR=${INSTR:-}
if [ -n "$INSTR" ]; then N=${N:-10000}; H2CONNS=${CONNS:-4}; else N=${N:-200000}; H2CONNS=${CONNS:-64}; fi
STREAMS=${STREAMS:-10}
BASE=${PORT:-21500}
# deps(), $LEM, $LEM_JIT, $NGXLUA, $OUT and the nginx config from bench/http.sh.
# shellcheck source=/dev/null
CMD_ONLY=1 source "$HERE/http.sh"
deps || exit 1
installed nghttp2-client || DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends nghttp2-client > /dev/null
[ -z "$INSTR" ] || installed valgrind || DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends valgrind > /dev/null
WRAP=() # INSTR: the server runs under callgrind (instr below)

# A certificate for localhost.
[ -f "$OUT/h2cert.pem" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
	-keyout "$OUT/h2key.pem" -out "$OUT/h2cert.pem" > /dev/null 2>&1

# The lem server: the hello world on a TLS or a plain listener.
cat > "$OUT/h2_hello.lua" <<'LUA'
local io = require 'lem.io'
local server = require 'lem.http.server'
local port, cert, key = tonumber(arg[1]), arg[2], arg[3]
local sock
if cert then
	sock = assert(io.tls.listen('127.0.0.1', port, { cert = cert, key = key }))
else
	sock = assert(io.tcp.listen('127.0.0.1', port))
end
assert(server.new(sock, function(_, res)
	res.headers['Content-Type'] = 'text/plain'
	res:add('Hello, World!\n')
end)):run()
LUA

ngx_conf() { # $1 port, $2 tls (0/1) -> nginx.conf path
	local d="$OUT/ngx-h2-$1" listen="listen 127.0.0.1:$1 http2;"
	mkdir -p "$d/tmp"
	[ "$2" = 1 ] && listen="listen 127.0.0.1:$1 ssl http2; ssl_certificate $OUT/h2cert.pem; ssl_certificate_key $OUT/h2key.pem;"
	sed -e "s#@NGXLUA@#$NGXLUA#g; s#@PREFIX@#$d#g; s#listen 127.0.0.1:@PORT@ backlog=4096;#$listen#" \
		"$PEERS_DIR/nginx.conf.in" > "$d/nginx.conf"
	echo "$d"
}

start() { # $1 runtime, $2 port, $3 tls -> pid
	# The server's output goes to a file: start runs in $(...), which
	# would otherwise wait for the server to close the pipe.
	local pid log="$OUT/h2-server-$1-$2.log"
	case $1 in
	nginx)
		local d; d=$(ngx_conf "$2" "$3")
		env LD_LIBRARY_PATH="$NGXLUA/usr/lib/x86_64-linux-gnu" taskset -c 0 "${WRAP[@]}" nginx -p "$d" -c "$d/nginx.conf" > "$log" 2>&1 &
		pid=$!;;
	lem | jit)
		local bin=$LEM; [ "$1" = jit ] && bin=$LEM_JIT
		if [ "$3" = 1 ]; then
			taskset -c 0 "${WRAP[@]}" "$bin" "$OUT/h2_hello.lua" "$2" "$OUT/h2cert.pem" "$OUT/h2key.pem" > "$log" 2>&1 &
		else
			taskset -c 0 "${WRAP[@]}" "$bin" "$OUT/h2_hello.lua" "$2" > "$log" 2>&1 &
		fi
		pid=$!;;
	esac
	for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$2") 2>/dev/null && break; sleep 0.1; done
	echo "$pid"
}

gone() { # $1 pid: not a child of this shell (started in $(...)): wait for it to go
	while kill -0 "$1" 2>/dev/null; do sleep 0.1; done
}

instr() { # $1 runtime, $2 port, $3 tls, $4 scheme -> instructions per request
	local f n t=() pid
	for n in 1 "$N"; do
		f="$OUT/h2-callgrind-$1-$2-$n.out"
		rm -f "$f"
		WRAP=(valgrind --tool=callgrind --trace-children=yes "--callgrind-out-file=$f")
		pid=$(start "$1" "$2" "$3")
		taskset -c 1 h2load -n "$n" -c "$([ "$n" = 1 ] && echo 1 || echo "$H2CONNS")" -m "$STREAMS" \
			"$4://127.0.0.1:$2/" 2>&1 | awk '/^requests:/{print "#", $0 > "/dev/stderr"}'
		kill -QUIT "$pid" 2>/dev/null; sleep 2; kill "$pid" 2>/dev/null
		gone "$pid"
		t+=("$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')")
	done
	WRAP=()
	[ -n "${t[0]}" ] && [ -n "${t[1]}" ] && echo $(((t[1] - t[0]) / (N - 1)))
}

what='req/s'; [ -n "$INSTR" ] && what='instructions/request'
echo "| server | transport | $what | × nginx+lua |"
echo '|---|---|---|---|'
for tls in 0 1; do
	transport=h2c; scheme=http; [ "$tls" = 1 ] && { transport=TLS; scheme=https; }
	ngx=
	for r in ${*:-nginx lem jit}; do
		BASE=$((BASE + 1))
		if [ -n "$INSTR" ]; then
			rps=$(instr "$r" "$BASE" "$tls" "$scheme")
			BASE=$((BASE + 1))
		else
			pid=$(start "$r" "$BASE" "$tls")
			quiet
			taskset -c 1 h2load -n $((N / 10)) -c "$H2CONNS" -m "$STREAMS" "$scheme://127.0.0.1:$BASE/" > /dev/null 2>&1
			rps=$(taskset -c 1 h2load -n "$N" -c "$H2CONNS" -m "$STREAMS" "$scheme://127.0.0.1:$BASE/" 2>&1 |
				awk '/^finished in/{gsub(",","",$4); print int($4)} /^requests:/{print "#", $0 > "/dev/stderr"}')
			kill "$pid" 2>/dev/null
			gone "$pid"
		fi
		[ "$r" = nginx ] && ngx=$rps
		ratio=-; [ -n "$ngx" ] && [ -n "$rps" ] && ratio=$(awk -v a="$rps" -v b="$ngx" 'BEGIN{printf "%.2f", a / b}')
		echo "| $r | $transport | ${rps:-failed} | $ratio |"
	done
done
