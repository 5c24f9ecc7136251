-- wrk script: wrk_chat.lua's small non-streaming chat request, but each request with a prompt
-- of its own (no prompt repeats, so the gateway's feedback book sees no regeneration); the
-- same WRK_JSON line at the end. Each run's prompts start with a random tag of their own: a
-- counter alone would send the same prompts again in the next run against the same gateway,
-- which its feedback book then counts as regenerations.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local sent = 0
local tag = ""

function init(args)
   local urandom = io.open("/dev/urandom", "rb")
   local bytes = urandom:read(8)
   urandom:close()
   tag = string.gsub(bytes, ".", function(c) return string.format("%02x", string.byte(c)) end)
end

function request()
   sent = sent + 1
   local body = '{"model":"bench-model","messages":[{"role":"user","content":"Say hello ' ..
                tag .. ' ' .. sent .. '."}],"max_tokens":8,"stream":false}'
   return wrk.format(nil, nil, nil, body)
end
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_report.lua")
