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

function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
      '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
      errors.write, errors.status, errors.timeout, latency:percentile(50),
      latency:percentile(99), latency.mean))
end
