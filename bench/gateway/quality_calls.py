"""The gateway's quality path, timed in process: what one request adds on the request path.

Per request the gateway takes the body's digest (the ledger writer finds regenerations from
it), notes the answer in the feedback book (its memory of recent requests) and the quality book
(confidence per pool), and counts the request for the drift sampler (every Nth body is kept for
the background scorer). This runs exactly those calls on the real books, over 200,000 requests
in rounds of 20,000: each with a body of its own (the common case), and all with one body (a
client sending the same request over and over). The median microseconds per request of each,
and their share of the CPU microseconds a whole request costs the gateway (`--request-us`, from
ab.py's `median_cpu_us_per_request`).

    python bench/gateway/quality_calls.py --request-us 150 \
        --out bench/results/gateway_quality_calls.json
"""

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from inferplane.gateway.admission.auth import ApiKey, hash_key
from inferplane.gateway.books.drift import DriftSampler
from inferplane.gateway.books.feedback import FeedbackBook
from inferplane.gateway.books.quality import QualityBook
from inferplane.ledger.regenerations import prompt_digest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loads

REQUESTS = 200_000
ROUND = 20_000
KEY = ApiKey(name="bench", key_hash=hash_key("bench-secret"), team="bench")
BODY = b'{"model":"bench-model","messages":[{"role":"user","content":"Say hello %d."}]}'


def one_round(bodies: list[bytes], first: int) -> float:
    """Microseconds per request of the quality calls for bodies[first:first + ROUND]."""
    registry = CollectorRegistry()
    feedback = FeedbackBook(registry, None, time.time)
    quality = QualityBook(registry)
    drift = DriftSampler(registry, None)
    ids = [f"chatcmpl-{index}" for index in range(first, first + ROUND)]
    began = time.perf_counter()
    for request_id, body in zip(ids, bodies[first : first + ROUND], strict=True):
        prompt_digest(body)
        feedback.served(request_id, KEY, None, "bench-model", "v1", False, "bench")
        quality.answered("bench-model", "v1", "bench", None)
        drift.sample("bench-model", "v1", body)
    return (time.perf_counter() - began) / ROUND * 1e6


def measure(distinct: bool) -> list[float]:
    bodies = [BODY % (index if distinct else 0) for index in range(REQUESTS)]
    return [round(one_round(bodies, first), 3) for first in range(0, REQUESTS, ROUND)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--request-us", type=float, help="CPU us a whole request costs")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result: dict[str, Any] = {"requests": REQUESTS, "round": ROUND}
    for name, distinct in (("distinct_bodies", True), ("one_body", False)):
        rounds = measure(distinct)
        median = statistics.median(rounds)
        result[name] = {"us_per_request": rounds, "median_us": round(median, 3)}
        if args.request_us:
            result[name]["share_of_request"] = round(median / args.request_us, 4)
    loads.emit(result, args.out)


if __name__ == "__main__":
    main()
