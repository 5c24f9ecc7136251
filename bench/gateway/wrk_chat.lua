-- wrk script: the same small non-streaming chat request on every connection; at the end it
-- prints one JSON line (prefixed WRK_JSON) that the harness reads.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],' ..
           '"max_tokens":8,"stream":false}'

function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
      '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
      errors.write, errors.status, errors.timeout, latency:percentile(50),
      latency:percentile(99), latency.mean))
end
