"""Larger traces from real ones: copies of each, time-shifted and merged, then sped up.

Copy k of a trace starts at a random offset into it (seeded) and wraps around its end, so
every copy keeps the trace's gaps, bursts and lengths, the copies do not arrive in step, and
the merged trace spans what the original does. Offsets drawn from the whole span flatten the
trace's slow swings (its busy and quiet minutes land anywhere); `max_shift_s` keeps them: copy
k then starts at most that far in, so the merged trace rises and falls as the original does,
only denser ("ten users for every one in the trace"). Merging several traces (the Azure
conversation and code traces) mixes their workloads at their own rates. A copy of a trace with
block ids gets ids of its own (shifted past every id the original uses): two copies are two
sets of users, not one conversation twice. Dividing by `speedup` raises the rate.
"""

import heapq
import random
from collections.abc import Sequence

from inferplane.sim.trace import Trace, TraceRequest


def repeat(
    traces: Sequence[Trace],
    copies: int,
    *,
    speedup: float = 1.0,
    seed: int = 0,
    max_shift_s: float | None = None,
) -> Trace:
    """`copies` shifted copies of every trace in `traces`, merged in arrival order."""
    if copies < 1 or speedup <= 0 or not traces:
        raise ValueError("repeat needs traces, copies >= 1 and speedup > 0 (e.g. 10, 4.0)")
    blocks = {t.block_tokens for t in traces if t.block_tokens}
    if len(blocks) > 1:
        raise ValueError(f"traces with different block sizes cannot merge: {sorted(blocks)}")
    rng = random.Random(seed)
    streams = [
        _copy(trace, rng.uniform(0, min(trace.span_s, max_shift_s or trace.span_s)), k, speedup)
        for trace in traces
        for k in range(copies)
    ]
    merged = tuple(heapq.merge(*streams, key=lambda r: r.arrival_s))
    name = "+".join(t.source for t in traces)
    return Trace(merged, traces[0].start_epoch, f"{copies} x ({name}) / {speedup:g}",
                 blocks.pop() if blocks else 0)  # fmt: skip


def _copy(trace: Trace, offset: float, k: int, speedup: float) -> list[TraceRequest]:
    span = trace.span_s
    stride = 1 + max((max(r.hash_ids, default=0) for r in trace.requests), default=0)
    shifted = [_shift(r, (r.arrival_s + offset) % span if span else 0.0, k * stride, speedup)
               for r in trace.requests]  # fmt: skip
    shifted.sort(key=lambda r: r.arrival_s)
    return shifted


def _shift(request: TraceRequest, at: float, id_offset: int, speedup: float) -> TraceRequest:
    ids = tuple(i + id_offset for i in request.hash_ids) if id_offset else request.hash_ids
    return TraceRequest(at / speedup, request.prompt_tokens, request.output_tokens, ids)


def head(trace: Trace, count: int) -> Trace:
    """The first `count` requests."""
    return Trace(trace.requests[:count], trace.start_epoch, trace.source, trace.block_tokens)
