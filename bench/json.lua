-- bench/json.lua: lem.json against lua-cjson in the same lem process, on
-- a ~1 MB document and on small ones (run by bench/json.sh on both builds).
-- Prints one line per case: the time per call of each and their ratio
-- (cjson's time / lem.json's: above 1 means lem.json is faster). Under a
-- stock lua (no lem.json) it times cjson alone, for scale.

local has_lem, json = pcall(require, 'lem.json')
local ok, cjson = pcall(require, 'cjson')
if not ok then
	io.stderr:write('bench/json.lua: lua-cjson not found (scripts/deps installs it)\n')
	os.exit(1)
end
local clock = os.clock

-- A document like an API's: an array of records with strings (some with
-- escapes and UTF-8), integers, floats, booleans, nested arrays and objects.
local function record(i)
	return {
		id = i,
		name = 'user' .. i,
		email = 'user' .. i .. '@example.com',
		score = i * 1.25,
		active = i % 3 == 0,
		tags = { 'alpha', 'beta', 'gamma' .. i % 7 },
		bio = 'Line one\nLine "two" \\ with a tab\tand caf\195\169 ' .. i,
		address = { street = i .. ' Main St', city = 'Springfield', zip = 10000 + i },
		history = { i, i + 1, i + 2, i + 3 },
	}
end

local big = {}
local n = 0
repeat
	n = n + 1
	big[n] = record(n)
until n % 100 == 0 and #cjson.encode(big) >= 1000000
if not has_lem then
	json = cjson
end
local big_text = json.encode(big)

local small = { id = 42, name = 'lem', ok = true, list = { 1, 2, 3 }, ratio = 0.5 }
local small_text = json.encode(small)

-- Seconds per call of f, from enough calls to take ~0.3 s.
local function measure(f, arg)
	f(arg)
	local calls, t0 = 0, clock()
	local batch = 1
	while true do
		for _ = 1, batch do
			f(arg)
		end
		calls = calls + batch
		local dt = clock() - t0
		if dt > 0.3 then
			return dt / calls
		end
		batch = batch * 2
	end
end

-- The best of three rounds each, alternating, so neither inherits the
-- other's garbage more often.
local function case(name, lemf, cjf, arg)
	if not has_lem then
		collectgarbage()
		local b = measure(cjf, arg)
		print(string.format('%-28s cjson %8.2f µs', name, b * 1e6))
		return
	end
	local a, b = math.huge, math.huge
	for _ = 1, 3 do
		collectgarbage()
		a = math.min(a, measure(lemf, arg))
		collectgarbage()
		b = math.min(b, measure(cjf, arg))
	end
	local unit, scale = 'µs', 1e6
	if a > 1e-3 then
		unit, scale = 'ms', 1e3
	end
	print(string.format('%-28s lem.json %8.2f %s  cjson %8.2f %s  ratio %.2fx',
		name, a * scale, unit, b * scale, unit, b / a))
end

print(string.format('%s; document %d bytes (%d records), small %d bytes',
	_VERSION, #big_text, n, #small_text))
case('encode 1 MB', json.encode, cjson.encode, big)
case('decode 1 MB', json.decode, cjson.decode, big_text)
case('encode small', json.encode, cjson.encode, small)
case('decode small', json.decode, cjson.decode, small_text)
