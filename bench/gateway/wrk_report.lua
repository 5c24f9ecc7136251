-- The WRK_JSON line every wrk script here prints at the end (the harness reads it): requests,
-- errors by kind and latency percentiles. Loaded by the scripts beside it with dofile.
function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
      '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
      errors.write, errors.status, errors.timeout, latency:percentile(50),
      latency:percentile(99), latency.mean))
end
