"""Histogram buckets, one tuple per kind of measurement, shared by every process.

Two processes that publish the same histogram must use the same buckets, or
`histogram_quantile` over their sum is wrong; so the buckets live here, not in each exporter.
"""

# Time to first token: tens of milliseconds on a warm GPU, seconds behind a long queue.
TTFT_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
# Time per output token after the first: a few milliseconds (GPU) to a second (loaded CPU).
TPOT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5)
# Whole requests: an embedding in 50 ms up to a long generation in minutes.
E2E_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0, 120.0, 300.0)
# Output tokens per second of one request.
RATE_BUCKETS = (1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0)
