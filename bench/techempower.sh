#!/bin/bash
# TechEmpower's six tests (json, db, queries=20, fortunes, updates=20,
# plaintext pipelined 16) after the benchmark's rules: lem (hathaway +
# lem.postgres + lem.json, bench/techempower/lem_app.lua) against
# OpenResty-style nginx + content_by_lua + pgmoon + cjson
# (bench/techempower/nginx.conf.in), one worker each and then two, on one
# throwaway PostgreSQL with the `world` and `fortune` tables. One run;
# figures in bench/README.md "TechEmpower".
# usage: bench/techempower.sh [runtime ...]
#   runtimes: nginx-1 lem-1 jit-1 nginx-2 lem-2 jit-2 (default: all)
# env: TESTS (default: json db queries fortunes updates plaintext), DUR (10),
#      CONNS (64), PGMOON (a pgmoon checkout; else the pinned release is
#      fetched), and those of bench/http.sh (LEM, LEM_JIT, NGXLUA, OUT).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=${OUT:-/tmp/lem-techempower}
# shellcheck source=/dev/null
CMD_ONLY=1 source "$HERE/http.sh"
DUR=${DUR:-10}; CONNS=${CONNS:-64}
TESTS=${TESTS:-json db queries fortunes updates plaintext}
TE=$HERE/techempower
deps || exit 1

# cjson for nginx's LuaJIT, unpacked beside its lua module.
if [ ! -f "$NGXLUA/usr/lib/x86_64-linux-gnu/lua/5.1/cjson.so" ]; then
	(cd "$(dirname "$NGXLUA")/debs" && apt-get download -qq lua-cjson && dpkg -x lua-cjson_*.deb "$NGXLUA") ||
		{ echo "could not fetch lua-cjson" >&2; exit 1; }
fi
# pgmoon (MIT) at a pinned commit: Debian has no package.
PGMOON_REV=8ece613
if [ -z "${PGMOON:-}" ]; then
	PGMOON=$OUT/pgmoon-$PGMOON_REV
	if [ ! -f "$PGMOON/pgmoon/init.lua" ]; then
		mkdir -p "$PGMOON"
		curl -fsSL "https://codeload.github.com/leafo/pgmoon/tar.gz/$PGMOON_REV" |
			tar -xz -C "$PGMOON" --strip-components=1 ||
			{ echo "could not fetch pgmoon: set PGMOON to a checkout" >&2; exit 1; }
	fi
fi

# The database, as the benchmark's: 10,000 worlds, 12 fortunes.
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pgdir=$(mktemp -d /tmp/lem-te-pg-XXXXXX)
as=()
if [ "$(id -u)" = 0 ]; then chown nobody "$pgdir"; as=(runuser -u nobody --); fi
"${as[@]}" "$bin/initdb" -D "$pgdir/data" -U postgres -A trust --no-sync -E UTF8 --locale=C >/dev/null
PGPORT=$((20000 + RANDOM % 20000))
taskset -c 1 "${as[@]}" "$bin/postgres" -D "$pgdir/data" -k "$pgdir" -p "$PGPORT" \
	-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200 >/dev/null 2>&1 &
pgpid=$!
trap 'stop; kill $pgpid 2>/dev/null; sleep 0.5; rm -rf "$pgdir"' EXIT
for _ in $(seq 100); do [ -S "$pgdir/.s.PGSQL.$PGPORT" ] && break; sleep 0.1; done
sleep 0.5
psql() { "$bin/psql" -q -h 127.0.0.1 -p "$PGPORT" -U postgres "$@"; }
psql -c 'CREATE DATABASE bench' >/dev/null
psql -d bench -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE TABLE world (id integer PRIMARY KEY, randomnumber integer NOT NULL DEFAULT 0);
INSERT INTO world SELECT i, 1 + floor(random() * 10000) FROM generate_series(1, 10000) i;
CREATE TABLE fortune (id integer PRIMARY KEY, message varchar(2048) NOT NULL);
INSERT INTO fortune VALUES
 (1, 'A bug in the hand is worth two in the backlog.'),
 (2, 'Premature optimization sends its regards.'),
 (3, 'Every loop ends, given a deadline.'),
 (4, '<script>alert("this text must arrive escaped")</script>'),
 (5, 'Ampersands & angle brackets <b> are escaped too.'),
 (6, 'A coroutine that never yields is a thread with manners missing.'),
 (7, 'Quotes: "double" and ''single''.'),
 (8, 'Ünïcödé survives the round trip: 日本語, ελληνικά.'),
 (9, 'The event loop waits for no one.'),
 (10, 'Measure twice, cut once.'),
 (11, 'Nothing is as permanent as a temporary fix.'),
 (12, 'Zero-copy is a state of mind.');
VACUUM ANALYZE;
SQL
CONNINFO="host=127.0.0.1 port=$PGPORT dbname=bench user=postgres"

tecmd() { # $1 runtime -> the server command for $PORT
	local w=${1#*-}
	case $1 in
	nginx-*)
		mkdir -p "$OUT/ngx/tmp"
		sed -e "s#@NGXLUA@#$NGXLUA#g; s#@PGMOON@#$PGMOON#g; s#@PORT@#$PORT#; s#@PREFIX@#$OUT/ngx#g; s#@PGPORT@#$PGPORT#; s#@WORKERS@#$w#" \
			"$TE/nginx.conf.in" > "$OUT/ngx/nginx.conf"
		echo "env LD_LIBRARY_PATH=$NGXLUA/usr/lib/x86_64-linux-gnu nginx -p $OUT/ngx -c $OUT/ngx/nginx.conf";;
	lem-*) echo "$LEM -w $w $TE/lem_app.lua $PORT";;
	jit-*) echo "$LEM_JIT -w $w $TE/lem_app.lua $PORT";;
	*) echo "unknown runtime $1" >&2; return 1;;
	esac
}
path() {
	case $1 in
	queries|updates) echo "/$1?queries=20";;
	*) echo "/$1";;
	esac
}

RES=$OUT/results.tsv; : > "$RES"
for r in ${*:-nginx-1 lem-1 jit-1 nginx-2 lem-2 jit-2}; do
	PORT=$((PORT + 1))
	c=$(tecmd "$r") || continue
	# One worker on CPU 0 (PostgreSQL and wrk on CPU 1); two on both.
	cpus=0; [ "${r#*-}" = 1 ] || cpus=0,1
	# shellcheck disable=SC2086
	POOL=16 CONNINFO=$CONNINFO taskset -c $cpus $c > "$OUT/server-$r.log" 2>&1 &
	SP=$!
	up=
	for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && { up=1; break; }; sleep 0.05; done
	[ -n "$up" ] || { echo "server $r did not start (see $OUT/server-$r.log)" >&2; stop; continue; }
	for t in $TESTS; do
		url="http://127.0.0.1:$PORT$(path "$t")"
		check=$(curl -s -o /dev/null -w '%{http_code}' "$url")
		[ "$check" = 200 ] || { echo "$r $t: HTTP $check (see $OUT/server-$r.log)" >&2; continue; }
		quiet
		s=(); [ "$t" = plaintext ] && s=(-s "$TE/pipeline.lua")
		taskset -c 1 wrk -t1 -c"$CONNS" -d1s "${s[@]}" "$url" >/dev/null 2>&1 # warm up
		w=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "${s[@]}" "$url" 2>&1)
		rps=$(echo "$w" | awk '/Requests\/sec/{print $2}')
		p99=$(echo "$w" | awk '$1=="99%"{print $2}')
		err=$(echo "$w" | grep -E 'Socket errors|Non-2xx' | tr -s ' ' | tr '\n' ';')
		printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "$rps" "$p99" "$err" | tee -a "$RES"
	done
	stop
done

# The table: req/s and p99 per test, lem's ratio to nginx at the same
# worker count.
python3 - "$RES" <<'PY'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.rstrip('\n').split('\t')
    if len(f) >= 4 and f[2]:
        rows[(f[0], f[1])] = (float(f[2]), f[3], f[4] if len(f) > 4 else '')
tests = list(dict.fromkeys(t for _, t in rows))
for w in ('1', '2'):
    rts = [r for r in ('nginx-' + w, 'lem-' + w, 'jit-' + w) if any(k[0] == r for k in rows)]
    if not rts:
        continue
    print(f'\n{w} worker(s): req/s (p99)\n')
    print('| test | ' + ' | '.join(rts) + ' | lem × nginx | jit × nginx |')
    print('|---' * (len(rts) + 3) + '|')
    for t in tests:
        cells, base = [], rows.get(('nginx-' + w, t))
        for r in rts:
            v = rows.get((r, t))
            cells.append(f'{v[0]:,.0f} ({v[1]})' + (' ⚠' if v and v[2] else '') if v else '-')
        ratios = []
        for r in ('lem-' + w, 'jit-' + w):
            v = rows.get((r, t))
            ratios.append(f'{v[0] / base[0]:.2f}' if v and base else '-')
        print(f'| {t} | ' + ' | '.join(cells) + ' | ' + ' | '.join(ratios) + ' |')
PY
