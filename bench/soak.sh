#!/bin/bash
# Soak: DUR seconds (default 600) of wrk against a hathaway app
# (bench/soak_app.lua) while bench/soak_faults.py resets connections
# mid-head, mid-body and mid-response, sends garbage and trickles slow
# clients. The server's RSS and open descriptors are sampled every second;
# the report gives them after the first minute and at the end, the growth
# between, crashes (the server must still be there) and whether every
# descriptor is back once the load is gone. See bench/README.md "Soak".
# env: LEM (release binary; built if missing), DUR (600), PORT (20600),
#      OUT (/tmp/lem-soak)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LEM=${LEM:-$ROOT/target/release/lem}
DUR=${DUR:-600}; PORT=${PORT:-20600}; OUT=${OUT:-/tmp/lem-soak}
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "soak.sh: wrk is needed (scripts/deps installs it)" >&2; exit 1; }
[ -x "$LEM" ] || (cd "$ROOT" && cargo build --release) || exit 1

"$LEM" "$HERE/soak_app.lua" "$PORT" 2>"$OUT/server.err" &
pid=$!
for _ in $(seq 50); do curl -s "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.1; done
fds() { ls /proc/$pid/fd 2>/dev/null | wc -l; }
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null; }
base_fds=$(fds)

: >"$OUT/samples"
( for _ in $(seq "$DUR"); do echo "$(date +%s) $(rss) $(fds)" >>"$OUT/samples"; sleep 1; done ) &
sampler=$!
python3 "$HERE/soak_faults.py" "$PORT" "$DUR" >"$OUT/faults" 2>&1 &
faults=$!
wrk -t1 -c32 -d"${DUR}s" "http://127.0.0.1:$PORT/" >"$OUT/wrk" 2>&1
wait $faults $sampler
sleep 6  # past the server's 5 s read timeout: idle leftovers are dropped
alive=yes; kill -0 $pid 2>/dev/null || alive=no
end_fds=$(fds)
kill $pid 2>/dev/null; wait $pid 2>/dev/null

after_minute=$(sed -n '60p' "$OUT/samples")
last=$(tail -n 1 "$OUT/samples")
echo "wrk:    $(grep -E 'Requests/sec|requests in|Socket errors|Non-2xx' "$OUT/wrk" | tr -s ' ' | tr '\n' ';')"
echo "faults: $(cat "$OUT/faults")"
echo "rss kB (after 1 min, end, max): $(echo "$after_minute" | cut -d' ' -f2), $(echo "$last" | cut -d' ' -f2), $(awk 'NR>=60 && $2>m {m=$2} END {print m}' "$OUT/samples")"
echo "fds (start, after 1 min, end of load, max, after): $base_fds, $(echo "$after_minute" | cut -d' ' -f3), $(echo "$last" | cut -d' ' -f3), $(awk '$3>m {m=$3} END {print m}' "$OUT/samples"), $end_fds"
echo "server alive at the end: $alive; stderr lines: $(wc -l <"$OUT/server.err")"
