-- wrk script: the same small non-streaming chat request on every connection; at the end it
-- prints one JSON line (prefixed WRK_JSON) that the harness reads.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],' ..
           '"max_tokens":8,"stream":false}'
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_report.lua")
