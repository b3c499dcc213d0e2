#!/usr/bin/env bash
# lem.sqlite3 against rusqlite called directly (bench/sqlite_floor), in one
# run, on files in one temp dir. Release builds; figures in bench/README.md.
#   bench/db_sqlite.sh [N]     (default 200000 rows)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
cargo build --release -q
cargo build --release -q --manifest-path bench/sqlite_floor/Cargo.toml
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "== rusqlite directly"
bench/sqlite_floor/target/release/sqlite_floor "$dir" "$n"
echo "== lem (Lua 5.4)"
target/release/lem bench/sqlite.lua "$dir" "$n"
