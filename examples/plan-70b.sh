#!/usr/bin/env sh
# Plan a 70B model serving 500,000 requests a day (512 prompt / 256 output tokens on average)
# at a 3 s p95 end-to-end latency, on RunPod's list prices. Prints the VRAM breakdown, the
# ranked options and every assumption behind them; add --json for machine-readable output or
# --chart plan-70b.png for cost against latency.
set -eu
exec inferplane plan \
  --model llama-3-70b --dtype bf16 --context 4096 --batch 8 \
  --requests-per-day 500000 --input-tokens 512 --output-tokens 256 \
  --p95-latency 3s --provider runpod "$@"
