#!/bin/bash
# Fairness under a computing route (see bench/README.md "Fairness"): one
# client hammers /compute (about 50 ms of CPU per request) while wrk loads
# the hello route over 64 connections; the hello route's p50/p99 for lem
# without a guard, lem --stall-kill 20 (the computing request is stopped
# after 20 ms and gets a 500), and nginx+lua doing the same computation.
# Servers on CPU 0, the clients on CPU 1.
# usage: bench/fairness.sh   env: DUR (10), CONNS (64), WORK (loop count
#   for ~50 ms on Lua 5.4 here; default 6000000), and those of bench/http.sh.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
DUR=${DUR:-10}
WORK=${WORK:-6000000}
OUT=${OUT:-/tmp/lem-http-bench}
CMD_ONLY=1 source "$HERE/http.sh"
deps || exit 1
CONNS=${CONNS:-64}

cat > "$OUT/fair.lua" <<EOF
local server = require 'lem.http.server'
local srv = assert(server.new('127.0.0.1', tonumber(arg[1]), function(req, res)
	if req.path == '/compute' then
		local x = 0
		for i = 1, $WORK do x = x + i % 7 end
		res:add('%d\n', x)
	else
		res:add('Hello, World!\n')
	end
end))
srv:run()
EOF
mkdir -p "$OUT/ngxf/tmp"
sed -e "s#@NGXLUA@#$NGXLUA#g; s#@PREFIX@#$OUT/ngxf#g" "$PEERS_DIR/nginx.conf.in" |
	awk -v work="$WORK" '/location \/ \{/ && !done {
		print "    location /compute {"
		print "      default_type text/plain;"
		print "      content_by_lua_block {"
		print "        local x = 0"
		print "        for i = 1, " work " do x = x + i % 7 end"
		print "        ngx.say(x)"
		print "      }"
		print "    }"
		done = 1
	} { print }' > "$OUT/ngxf/nginx.conf.tmpl"

run() { # $1 label, $2 server command (with @PORT@)
	PORT=$((PORT + 1))
	local c=${2//@PORT@/$PORT}
	sed -e "s#@PORT@#$PORT#" "$OUT/ngxf/nginx.conf.tmpl" > "$OUT/ngxf/nginx.conf"
	taskset -c 0 $c > "$OUT/fair-$1.log" 2>&1 &
	local sp=$!
	for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
	# The hammer: one connection after another on /compute, for the whole run.
	(end=$((SECONDS + DUR + 1)); n=0
	 while [ $SECONDS -lt $end ]; do curl -s -o /dev/null "http://127.0.0.1:$PORT/compute"; n=$((n + 1)); done
	 echo "$n" > "$OUT/fair-$1.hammer") &
	local hp=$!
	local w; w=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$PORT/")
	wait "$hp"
	kill "$sp" 2>/dev/null; wait "$sp" 2>/dev/null
	local rps p50 p99
	rps=$(echo "$w" | awk '/Requests\/sec/{print $2}')
	p50=$(echo "$w" | awk '$1=="50%"{print $2}')
	p99=$(echo "$w" | awk '$1=="99%"{print $2}')
	echo "| $1 | $rps | $p50 | $p99 | $(cat "$OUT/fair-$1.hammer") |"
}

echo '| server | hello req/s | hello p50 | hello p99 | /compute requests |'
echo '|---|---|---|---|---|'
run nginx "env LD_LIBRARY_PATH=$NGXLUA/usr/lib/x86_64-linux-gnu nginx -p $OUT/ngxf -c $OUT/ngxf/nginx.conf"
run lem "$LEM $OUT/fair.lua @PORT@"
run lem-stall-kill-20ms "$LEM --stall-kill 20 $OUT/fair.lua @PORT@"
