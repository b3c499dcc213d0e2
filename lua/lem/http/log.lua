-- lem.http.log: the access log of lem.http.server (srv.access_log). See
-- docs/http-server.md. A log is a function of one entry (a table: time,
-- peer, method, target, version, status, bytes, duration); lines go to
-- their file or stream from a coroutine of their own, so a request never
-- waits for the disk: it adds its line to a queue and goes on.
--
-- Each write is of whole lines only (at most 4096 bytes of them unless one
-- line is longer): a file is opened with O_APPEND, so the lines of several
-- processes (lem -w) interleave but never split; a pipe takes up to
-- PIPE_BUF bytes in one piece too.
local io = require 'lem.io'
local utils = require 'lem.utils'

local type, tostring, pcall, format, byte, gsub, floor = type, tostring, pcall, string.format, string.byte, string.gsub, math.floor
local concat, date, getmetatable = table.concat, os.date, getmetatable
local stderr = _G.io.stderr

local M = {}

-- Most lines queued before new ones are dropped (and counted): memory
-- stays bounded when the disk is slower than the requests.
M.max_queue = 10000

-- A target as a quoted-string part of a common log line: '"', '\' and
-- bytes outside printable ASCII as \xHH (as nginx writes them).
local function clf_escape(s)
	return (gsub(s, '[%c"\\\128-\255]', function(c)
		return format('\\x%02X', byte(c))
	end))
end

local clf_second, clf_time = -1, ''

-- log.common(entry) -> the entry as a common log format line, with the
-- duration in seconds as one more field:
-- 127.0.0.1 - - [07/Dec/2026:08:50:08 +0000] "GET /x HTTP/1.1" 200 5 0.000213
function M.common(e)
	local t = floor(e.time)
	if t ~= clf_second then
		clf_second, clf_time = t, date('!%d/%b/%Y:%H:%M:%S +0000', t)
	end
	return format('%s - - [%s] "%s %s HTTP/%s" %d %s %.6f\n', e.peer or '-', clf_time,
		clf_escape(e.method), clf_escape(e.target), e.version, e.status,
		e.bytes and format('%d', e.bytes) or '-', e.duration)
end

-- A string as JSON: '"', '\', control bytes and bytes past ASCII as
-- \u00XX (a target need not be UTF-8; the log stays one line of ASCII).
local function json_string(s)
	return '"' .. gsub(s, '[%c"\\\128-\255]', function(c)
		return format('\\u%04x', byte(c))
	end) .. '"'
end

-- log.json(entry) -> the entry as one line of JSON.
function M.json(e)
	return format('{"time":%s,"peer":%s,"method":%s,"target":%s,"version":%s,"status":%d,"bytes":%s,"duration":%.6f}\n',
		format('%.3f', e.time), e.peer and json_string(e.peer) or 'null', json_string(e.method),
		json_string(e.target), json_string(e.version), e.status,
		e.bytes and format('%d', e.bytes) or 'null', e.duration)
end

local formats = { common = M.common, json = M.json }

-- Lines from a queue to out (a File, a Stream, or a path opened on the
-- first line), a batch of whole lines at a time.
local function writer(out, label)
	local queue, n, dropped, busy = {}, 0, 0, false
	local file = type(out) ~= 'string' and out or nil
	local function complain(err)
		stderr:write('lem.http.server: access log ', label, ': ', tostring(err), '\n')
	end
	local function drain()
		if not file then
			local err
			file, err = io.open(out, 'a')
			if not file then
				complain(err)
				queue, n, busy = {}, 0, false
				return
			end
		end
		while n > 0 do
			-- Lines that come in while these are written wait for the next round.
			local q, m = queue, n
			queue, n = {}, 0
			local i = 1
			while i <= m do
				local batch, size, k = {}, 0, 0
				while i <= m and (k == 0 or size + #q[i] <= 4096) do
					k, size = k + 1, size + #q[i]
					batch[k] = q[i]
					i = i + 1
				end
				local ok, err = file:write(concat(batch))
				if not ok then
					complain(err)
				end
			end
			if dropped > 0 and n == 0 then
				complain(format('%d lines dropped (the queue was full)', dropped))
				dropped = 0
			end
		end
		busy = false
	end
	return function(line)
		if n >= M.max_queue then
			dropped = dropped + 1
			return
		end
		n = n + 1
		queue[n] = line
		if not busy then
			busy = true
			utils.spawn(drain)
		end
	end
end

-- log.new(sink [, format]) -> log(entry): sink is a file name (appended
-- to), a Stream or File (io.stderr), or a function called with each
-- entry; format 'common' (default) or 'json' makes the lines.
function M.new(sink, fmt)
	local line = formats[fmt or 'common']
	if not line then
		error(format("bad argument #2 to 'new' (format 'common' or 'json' expected, got %s)", tostring(fmt)), 2)
	end
	local t = type(sink)
	if t == 'function' then
		return function(e)
			local ok, err = pcall(sink, e)
			if not ok then
				stderr:write('lem.http.server: the access log function raised: ', tostring(err), '\n')
			end
		end
	end
	if sink == stderr then
		sink = io.stderr
	end
	local label
	if t == 'string' then
		label = sink
	elseif (t == 'userdata' or t == 'table') and getmetatable(sink) and (getmetatable(sink) == io.Stream
		or getmetatable(sink) == io.File) then
		label = tostring(sink)
	else
		error(format("bad argument #1 to 'new' (a file name, Stream, File or function expected, got %s)", t), 2)
	end
	local put = writer(sink, label)
	return function(e)
		put(line(e))
	end
end

return M
