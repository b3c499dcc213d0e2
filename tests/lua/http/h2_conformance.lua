-- HTTP/2 conformance in the manner of h2spec's case list (h2spec itself
-- cannot be installed here), from RFC 9113 and RFC 7541: each case is
-- sent as raw frames on a connection of its own (http/data/h2_peer.py
-- 'conformance') and the server's answer compared with what the RFC
-- asks. Codes: 1 PROTOCOL_ERROR, 3 FLOW_CONTROL_ERROR, 6 FRAME_SIZE_ERROR,
-- 9 COMPRESSION_ERROR. The framing is the h2 crate's; where it answers
-- with another code than the RFC names (still an error of the same
-- reach), the case says so and expects what it does.
dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'

-- A request with a body is answered only once the body is read: else
-- the answer could go out before the DATA frame whose length is wrong
-- ('content-length mismatch') arrived, and the case would race.
local srv, port = common.serve(function(req, res)
	if req.method == 'POST' then
		req:body()
	end
	res[1] = 'ok'
end)
local out = common.sh(('/usr/bin/python3 -B http/data/h2_peer.py conformance %d 2>&1'):format(port))
local got = {}
for name, result in out:gmatch('([^\n]+): ([^\n]+)') do
	got[name] = result
end
eq(got, {
	['unknown frame type'] = 'status 200', -- 4.1: ignored
	['oversized frame'] = 'goaway 6', -- 4.2
	['even stream id'] = 'goaway 1', -- 5.1.1
	['DATA on stream 0'] = 'goaway 1', -- 6.1
	['DATA on an idle stream'] = 'goaway 1', -- 5.1
	['PRIORITY on itself'] = 'reset 1', -- 5.3.1: a stream error
	['RST_STREAM on an idle stream'] = 'goaway 1', -- 6.4
	['SETTINGS of bad length'] = 'goaway 1', -- 6.5 asks FRAME_SIZE_ERROR
	['ENABLE_PUSH 2'] = 'goaway 1', -- 6.5.2
	['window size too large'] = 'goaway 1', -- 6.5.2 asks FLOW_CONTROL_ERROR
	['PING of bad length'] = 'goaway 1', -- 6.7 asks FRAME_SIZE_ERROR
	['PING'] = 'pong', -- 6.7
	['WINDOW_UPDATE 0'] = 'goaway 1', -- 6.9
	['window overflow'] = 'goaway 3', -- 6.9.1
	['lone CONTINUATION'] = 'goaway 1', -- 6.10
	['upper-case field name'] = 'goaway 1', -- 8.2.1: malformed (h2 ends the connection)
	['connection field'] = 'reset 1', -- 8.2.2
	['te: gzip'] = 'reset 1', -- 8.2.2
	['pseudo after regular'] = 'reset 1', -- 8.3
	['no :path'] = 'reset 1', -- 8.3.1
	['unknown pseudo-header'] = 'goaway 1', -- 8.3: malformed (h2 ends the connection)
	['content-length mismatch'] = 'reset 1', -- 8.1.1
	['HPACK table size update too large'] = 'goaway 1', -- RFC 7541 §4.2 asks COMPRESSION_ERROR
	['HPACK index out of range'] = 'goaway 1', -- RFC 7541 §2.3.3 asks COMPRESSION_ERROR
}, 'answers: ' .. out)
-- And the server goes on.
eq(common.sh(('curl -s --http2-prior-knowledge http://127.0.0.1:%d/'):format(port)), 'ok', 'served after')
srv:close()
