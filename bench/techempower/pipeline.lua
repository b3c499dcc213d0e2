-- wrk script: each write sends DEPTH requests at once (TechEmpower's
-- plaintext test pipelines 16).
local depth = tonumber(os.getenv 'DEPTH') or 16
local batch

function init()
	local r = {}
	for i = 1, depth do
		r[i] = wrk.format()
	end
	batch = table.concat(r)
end

function request()
	return batch
end
