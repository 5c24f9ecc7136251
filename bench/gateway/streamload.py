"""Streaming load for the gateway benchmark: time to first byte and to last byte per request.

CONCURRENCY workers each send streaming chat requests back to back over one keep-alive
connection until STREAMS requests are done (or MAX_SECONDS have passed, for slow targets); the
first request of each worker is a warm-up and is not counted. Time to first byte is from just
before the request is written to the first body bytes (the first SSE event); time to last byte
is to the end of the stream. Prints one JSON object on stdout.

Run: python bench/gateway/streamload.py URL [--streams 640 --concurrency 32]
"""

import argparse
import asyncio
import json
import statistics
import time

import aiohttp
import uvloop

BODY = json.dumps(
    {
        "model": "bench-model",
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 20,
        "stream": True,
    }
).encode()
STAGGER_S = 0.006  # 32 workers x 6 ms spread the starts over about one 180 ms stream


async def one_stream(session: aiohttp.ClientSession, url: str) -> tuple[float, float, int]:
    """(ttfb_s, ttlb_s, body bytes) of one streaming request; raises on a non-200 reply."""
    started = time.perf_counter()
    first = 0.0
    size = 0
    headers = {"Content-Type": "application/json"}
    async with session.post(url, data=BODY, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"status {response.status}: {(await response.text())[:200]}")
        async for data in response.content.iter_any():
            if data and not first:
                first = time.perf_counter()
            size += len(data)
    return first - started, time.perf_counter() - started, size


async def worker(
    session: aiohttp.ClientSession,
    url: str,
    todo: list[int],
    out: list[tuple[float, float]],
    errors: list[str],
    *,
    delay_s: float,
    deadline: float,
) -> None:
    await asyncio.sleep(delay_s)  # staggered starts, so the streams do not tick in lockstep
    warm = True
    while todo and time.perf_counter() < deadline:  # slow targets stop at the deadline
        todo.pop()
        try:
            ttfb, ttlb, size = await one_stream(session, url)
        except (aiohttp.ClientError, RuntimeError, TimeoutError) as exc:
            errors.append(repr(exc)[:200])
            continue
        if not warm and size > 0:
            out.append((ttfb, ttlb))
        warm = False


def quantile(values: list[float], q: float) -> float:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[round(q * 100) - 1]


def summary(
    samples: list[tuple[float, float]], errors: list[str], wall_s: float
) -> dict[str, object]:
    if len(samples) < 2:
        return {"ok": 0, "errors": len(errors), "first_errors": errors[:3]}
    ttfb = [s[0] * 1000 for s in samples]
    ttlb = [s[1] * 1000 for s in samples]
    return {
        "ok": len(samples),
        "errors": len(errors),
        "first_errors": errors[:3],
        "wall_s": round(wall_s, 2),
        "ttfb_ms": {"p50": round(quantile(ttfb, 0.5), 3), "p99": round(quantile(ttfb, 0.99), 3)},
        "ttlb_ms": {"p50": round(quantile(ttlb, 0.5), 3), "p99": round(quantile(ttlb, 0.99), 3)},
    }


async def run(
    url: str, streams: int, concurrency: int, timeout_s: float, max_s: float
) -> dict[str, object]:
    todo = list(range(streams + concurrency))  # + one warm-up per worker
    samples: list[tuple[float, float]] = []
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        deadline = started + max_s
        await asyncio.gather(
            *(
                worker(
                    session, url, todo, samples, errors, delay_s=i * STAGGER_S, deadline=deadline
                )
                for i in range(concurrency)
            )
        )
        wall = time.perf_counter() - started
    return summary(samples, errors, wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("url")
    parser.add_argument("--streams", type=int, default=640)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="no new stream after")
    args = parser.parse_args()
    result = uvloop.run(
        run(args.url, args.streams, args.concurrency, args.timeout, args.max_seconds)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
