"""A small synthetic fleet history for report and CLI tests, costed by the real attribution."""

import random
from dataclasses import dataclass

from inferplane.ledger.attribution import ReplicaMeter
from inferplane.ledger.spans import RequestSpan, steps_from_spans
from inferplane.ledger.usage import UsageRecord, idle_request_id


@dataclass(frozen=True)
class Replica:
    name: str
    pool: str
    model: str
    gpu: str
    hourly_usd: float


REPLICAS = (
    Replica("chat-0", "chat-primary", "chat-small", "H100-SXM", 2.69),
    Replica("chat-1", "chat-primary", "chat-small", "H100-SXM", 2.69),
    Replica("embed-0", "embeddings", "minilm", "L4", 0.43),
)
TEAMS = {"key-a": "ml", "key-b": "ml", "key-c": "web"}


def _spans(rng: random.Random, replica: Replica, start: float, n: int) -> list[RequestSpan]:
    spans, now = [], start
    for i in range(n):
        now += rng.expovariate(1 / 20.0)
        length = rng.uniform(0.05, 3.0)
        request_id = f"{replica.name}-{int(start)}-{i}"
        spans.append(RequestSpan(request_id, now, now + length, rng.randint(10, 900)))
    return spans


def _record(
    rng: random.Random, replica: Replica, span: RequestSpan, meter: ReplicaMeter
) -> UsageRecord:
    charge = meter.charge(span.request_id)
    key = rng.choice(sorted(TEAMS))
    prompt = span.tokens * 3 // 4
    return UsageRecord(
        time=span.start,
        request_id=span.request_id,
        model=replica.model,
        pool=replica.pool,
        replica=replica.name,
        gpu_type=replica.gpu,
        gpu_seconds=charge.gpu_seconds,
        cost_micro_usd=charge.cost_micro_usd,
        key=key,
        team=TEAMS[key],
        prompt_tokens=prompt,
        completion_tokens=span.tokens - prompt,
        ttft_s=0.05,
        duration_s=span.end - span.start,
    )


def history(start: float, end: float, seed: int = 1, per_replica: int = 150) -> list[UsageRecord]:
    """Records of every replica for [start, end): requests, then the idle rest."""
    rng = random.Random(seed)
    records = []
    for replica in REPLICAS:
        meter = ReplicaMeter(replica.hourly_usd, 1, start)
        spans = [s for s in _spans(rng, replica, start, per_replica) if s.end < end]
        for step in steps_from_spans(spans):
            meter.observe(step)
        records += [_record(rng, replica, span, meter) for span in spans]
        idle = meter.charge_idle(end)
        assert idle is not None
        records.append(
            UsageRecord(
                time=idle.start,
                request_id=idle_request_id(replica.name, round(idle.start * 1e6)),
                kind="idle",
                model=replica.model,
                pool=replica.pool,
                replica=replica.name,
                gpu_type=replica.gpu,
                gpu_seconds=idle.charge.gpu_seconds,
                cost_micro_usd=idle.charge.cost_micro_usd,
                duration_s=idle.end - idle.start,
            )
        )
    return records
