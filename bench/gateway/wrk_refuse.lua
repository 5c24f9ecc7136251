-- wrk script: the overload benchmark's streaming chat request (32 tokens); with WRK_CLOSE=1 in
-- the environment each request asks to close its connection, so every one opens a new
-- connection as a burst of new clients does. Prints the WRK_JSON line at the end.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if os.getenv("WRK_CLOSE") == "1" then
   wrk.headers["Connection"] = "close"
end
wrk.body = '{"model":"bench-model","messages":[{"role":"user","content":"tell me a story"}],' ..
           '"max_tokens":32,"stream":true}'
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_report.lua")
