#!/usr/bin/env bash
# lem.sqlite3 (its default mode: a thread per connection; and inline, on
# the loop thread) against rusqlite called directly (bench/sqlite_floor)
# and against LuaDBI and LuaSQL under stock lua5.4 (bench/sqlite_peers.lua),
# in one run, on files in one temp dir. Release builds; figures in
# bench/README.md. Installs the Debian peers (lua5.4, lua-dbi-sqlite3,
# lua-sql-sqlite3) when they are missing.
#   bench/db_sqlite.sh [N]     (default 200000 rows)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
target=${CARGO_TARGET_DIR:-target}

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = 'install ok installed' ]; }
missing=()
for p in lua5.4 lua-dbi-sqlite3 lua-sql-sqlite3; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
	apt=(apt-get)
	[ "$(id -u)" -ne 0 ] && apt=(sudo apt-get)
	echo "installing ${missing[*]}" >&2
	DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo build --release -q
CARGO_TARGET_DIR="$PWD/bench/sqlite_floor/target" cargo build --release -q --manifest-path bench/sqlite_floor/Cargo.toml
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "== load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
echo "== rusqlite directly"
bench/sqlite_floor/target/release/sqlite_floor "$dir" "$n"
echo "== lem (Lua 5.4), default mode (a thread per connection)"
"$target/release/lem" bench/sqlite.lua "$dir" "$n" | tee "$dir/thread.txt"
echo "== lem (Lua 5.4), {inline = true}"
"$target/release/lem" bench/sqlite.lua "$dir" "$n" inline | tee "$dir/inline.txt"
echo "== LuaDBI, LuaSQL (stock lua5.4)"
lua5.4 bench/sqlite_peers.lua "$dir" "$n" | tee "$dir/peers.txt"

# Ratios to LuaDBI of the per-row figures.
rate() { grep -F "$2" "$1" | head -1 | sed -E 's/.* ([0-9]+) \/s.*/\1/'; }
dbi_ins=$(rate "$dir/peers.txt" 'luadbi   insert')
dbi_sel=$(rate "$dir/peers.txt" 'luadbi   point select')
sql_ins=$(rate "$dir/peers.txt" 'luasql   insert')
sql_sel=$(rate "$dir/peers.txt" 'luasql   point select')
echo "== per row, against LuaDBI (LuaSQL's for comparison)"
printf '%-26s %10s %10s %8s %8s\n' '' 'lem /s' 'LuaDBI /s' 'x DBI' 'x SQL'
for mode in thread inline; do
	for what in 'insert (one transaction)' 'point select (bind + fetchone)'; do
		r=$(rate "$dir/$mode.txt" "$what")
		case $what in
		insert*) d=$dbi_ins s=$sql_ins ;;
		*) d=$dbi_sel s=$sql_sel ;;
		esac
		printf '%-26s %10s %10s %8.2f %8.2f\n' "$mode: ${what%% (*}" "$r" "$d" \
			"$(echo "$r / $d" | bc -l)" "$(echo "$r / $s" | bc -l)"
	done
done
