#!/usr/bin/env bash
# lem.json against Debian's lua-cjson (2.1) in the same lem process, on both
# builds: encode and decode of a ~1 MB document and of a small one
# (bench/json.lua); then cjson alone under the stock lua5.4, for scale. Release
# builds; figures in bench/README.md.
#   bench/json.sh
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for p in lua-cjson lua5.4; do
	[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = 'install ok installed' ] || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	apt=(apt-get)
	[ "$(id -u)" -ne 0 ] && apt=(sudo apt-get)
	"${apt[@]}" install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q
cargo build --release -q --no-default-features --features luajit --target-dir "$target/jit"
echo "== lem, Lua 5.4"
"$target/release/lem" bench/json.lua
echo "== lem, LuaJIT"
"$target/jit/release/lem" bench/json.lua
echo "== stock lua5.4, cjson alone"
lua5.4 bench/json.lua
