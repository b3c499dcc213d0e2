#!/usr/bin/env bash
# The Autobahn testsuite (wstest 0.8.2, Python 2.7) against lem.websocket:
# fuzzingclient against the lem echo server (bench/ws_echo.lua), then
# fuzzingserver against the lem client (bench/ws_autobahn_client.lua).
# Prints the count of each result per section for both; the HTML reports
# are left in $OUT (default bench/autobahn-out, not committed).
#   bench/autobahn.sh [CASES]   CASES: a JSON list, default sections 1-11
# Needs pyenv's Python 2.7 (`pyenv versions`); makes a virtualenv of it in
# $VENV (default ~/.cache/lem-autobahn) the first time. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${1:-'["1.*","2.*","3.*","4.*","5.*","6.*","7.*","9.*","10.*","11.*"]'}
out=${OUT:-bench/autobahn-out}
venv=${VENV:-$HOME/.cache/lem-autobahn}
py27=${PY27:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")/versions/2.7.18/bin/python}
lem=${LEM:-target/release/lem}

if [ ! -x "$venv/bin/wstest" ]; then
	"$py27" -m virtualenv --version >/dev/null 2>&1 || "$py27" -m pip install --user 'virtualenv<20.22'
	"$py27" -m virtualenv "$venv"
	"$venv/bin/pip" install autobahntestsuite==0.8.2
fi
[ -x "$lem" ] || cargo build --release
mkdir -p "$out"
out=$(cd "$out" && pwd)

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# The count of each behavior per section, from a report's index.json.
summary() {
	"$venv/bin/python" - "$1" <<'PY'
import json, sys, collections
idx = json.load(open(sys.argv[1]))
for agent, cases in idx.items():
    per = collections.defaultdict(collections.Counter)
    for case, r in cases.items():
        per[int(case.split('.')[0])][r['behavior']] += 1
    for s in sorted(per):
        print('  %-3d %s' % (s, ', '.join('%s %d' % kv for kv in sorted(per[s].items()))))
PY
}

# lem as the server.
"$lem" bench/ws_echo.lua 9001 >"$out/echo.log" 2>&1 &
pids+=($!)
sleep 0.5
cat >"$out/client.json" <<JSON
{"outdir": "$out/server", "servers": [{"agent": "lem", "url": "ws://127.0.0.1:9001"}],
 "cases": $cases, "exclude-cases": [], "exclude-agent-cases": {}}
JSON
(cd "$out" && "$venv/bin/wstest" -m fuzzingclient -s client.json >wstest-client.log 2>&1)
echo "lem server (wstest -m fuzzingclient):"
summary "$out/server/index.json"

# lem as the client.
cat >"$out/server.json" <<JSON
{"url": "ws://127.0.0.1:9002", "outdir": "$out/client",
 "cases": $cases, "exclude-cases": [], "exclude-agent-cases": {}}
JSON
(cd "$out" && exec "$venv/bin/wstest" -m fuzzingserver -s server.json >wstest-server.log 2>&1) &
pids+=($!)
sleep 2
"$lem" bench/ws_autobahn_client.lua ws://127.0.0.1:9002 >"$out/client.log" 2>&1
echo "lem client (wstest -m fuzzingserver):"
summary "$out/client/index.json"
