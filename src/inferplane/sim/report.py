"""What a simulation found: latency percentiles, throughput, replicas over time, GPU time, cost.

A SimReport holds plain numbers, strings, lists and dicts only, so `to_dict()` is JSON as it
is. Percentiles are nearest-rank (the controller's `percentile`). GPU-seconds count every
replica from its start (cold start included: the GPU is held and paid for) until it stopped or
the simulation ended; cost is GPU-hours at the catalog's $/hour for the pool's GPU, provider
and capacity (None where that provider does not sell it).

Routing quality: the prefix-cache hit rate is the engines' own count (prompt tokens found
cached / prompt tokens looked up, over every replica), and the busiest replica's share is the
fraction of the pool's finished requests that the replica serving the most of them served
(1 / replicas when perfectly even). TTFT is also given per 5-minute window of arrivals (the
window the SLA alert rule takes its percentiles over), so an SLO can be held to every window,
not only to the whole run. The busy fraction is the replicas' time spent in engine
steps over their GPU time: how close to saturation the pool ran.

A FleetReport gathers the reports of every pool a fleet simulation sent traffic to, with how
often each routing rule decided.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from inferplane.control.signals import percentile
from inferplane.sim.records import RequestRecord
from inferplane.sim.replica import SimReplica
from inferplane.sim.scaling import FleetSample, QueueSample, ScaleEvent

WINDOW_S = 300.0  # the SLA alert rule's rate window
_PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99))


@dataclass(frozen=True)
class Distribution:
    """Percentiles and mean of one quantity over finished requests; zeros when none."""

    p50: float = 0.0
    p90: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    mean: float = 0.0
    max: float = 0.0

    @classmethod
    def of(cls, values: Sequence[float]) -> "Distribution":
        if not values:
            return cls()
        points = {name: _round(percentile(values, q)) for name, q in _PERCENTILES}
        return cls(**points, mean=_round(sum(values) / len(values)), max=_round(max(values)))


@dataclass(frozen=True)
class SimReport:
    """One simulated run of a trace through a pool under one balancing policy."""

    pool: str
    policy: str
    gpu: str
    model: str
    seed: int
    requests: int
    finished: int
    rejected: int
    held: int  # requests that waited at the gateway for a replica to come up
    rejected_by_reason: dict[str, int]
    ttft_s: Distribution
    latency_s: Distribution
    tpot_s: Distribution
    ttft_windows: list[dict[str, float]]  # per WINDOW_S of arrivals: from_s, requests, p95
    prompt_tokens: int
    output_tokens: int
    output_tokens_per_s: float
    duration_s: float  # simulated time until the run ended (the pool settled)
    last_finish_s: float
    preemptions: int
    prefix_cache_hit_rate: float
    busiest_replica_share: float
    busy_fraction: float  # of the replicas' GPU time, the share spent computing steps
    failed_over: int  # requests sent to a second replica after theirs died
    restarts: int  # crashed replicas restarted
    reclaims: int  # spot replicas taken by the cloud
    replicas_max: int
    replicas_mean: float  # time-weighted, every phase that holds a GPU
    replica_timeline: list[dict[str, float]] = field(default_factory=list)
    queue_timeline: list[dict[str, float]] = field(default_factory=list)  # at ticks, on change
    scale_events: list[dict[str, Any]] = field(default_factory=list)
    gpu_seconds: float = 0.0
    hourly_usd: float | None = None  # per GPU
    cost_usd: float | None = None
    usd_per_1m_output_tokens: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunFacts:
    """Everything about one run the report is computed from."""

    pool: str
    policy: str
    gpu: str
    model: str
    seed: int
    records: Sequence[RequestRecord]
    replicas: Sequence[SimReplica]
    timeline: Sequence[FleetSample]
    events: Sequence[ScaleEvent]
    end_s: float
    hourly_usd: float | None
    settings: dict[str, Any]
    restarts: int = 0
    reclaims: int = 0
    queue: Sequence[QueueSample] = ()


def build_report(facts: RunFacts) -> SimReport:
    done = [r for r in facts.records if r.outcome == "finished"]
    rejected = [r for r in facts.records if r.outcome == "rejected"]
    output = sum(r.output_tokens for r in done)
    last = max((r.finish_s for r in done if r.finish_s is not None), default=0.0)
    gpu_seconds = _gpu_seconds(facts.replicas, facts.end_s)
    cost = None if facts.hourly_usd is None else gpu_seconds / 3600 * facts.hourly_usd
    per_million = None if cost is None or not output else _round(cost / output * 1e6)
    return SimReport(
        pool=facts.pool,
        policy=facts.policy,
        gpu=facts.gpu,
        model=facts.model,
        seed=facts.seed,
        requests=len(facts.records),
        finished=len(done),
        rejected=len(rejected),
        held=sum(1 for r in facts.records if r.held),
        rejected_by_reason=_reasons(rejected),
        ttft_s=Distribution.of([r.ttft_s for r in done if r.ttft_s is not None]),
        latency_s=Distribution.of([r.latency_s for r in done if r.latency_s is not None]),
        tpot_s=Distribution.of(_tpots(done)),
        ttft_windows=_windows(done),
        prompt_tokens=sum(r.prompt_tokens for r in done),
        output_tokens=output,
        output_tokens_per_s=_round(output / last) if last > 0 else 0.0,
        duration_s=_round(facts.end_s),
        last_finish_s=_round(last),
        preemptions=sum(r.scheduler.num_preemptions for r in facts.replicas),
        prefix_cache_hit_rate=_round(_hit_rate(facts.replicas)),
        busiest_replica_share=_round(_busiest_share(done)),
        busy_fraction=_round(_busy_fraction(facts.replicas, gpu_seconds)),
        failed_over=sum(1 for r in facts.records if r.attempts > 1),
        restarts=facts.restarts,
        reclaims=facts.reclaims,
        replicas_max=max((s.total for s in facts.timeline), default=0),
        replicas_mean=_round(_mean_replicas(facts.timeline, facts.end_s)),
        replica_timeline=[_sample(s) for s in facts.timeline],
        queue_timeline=[_queue(q) for q in facts.queue],
        scale_events=[_event(e) for e in facts.events],
        gpu_seconds=_round(gpu_seconds),
        hourly_usd=facts.hourly_usd,
        cost_usd=None if cost is None else _round(cost),
        usd_per_1m_output_tokens=per_million,
        settings=facts.settings,
    )


def _round(value: float) -> float:
    return round(value, 6)


def _tpots(done: Sequence[RequestRecord]) -> list[float]:
    found = []
    for r in done:
        if r.finish_s is not None and r.first_token_s is not None and r.output_tokens > 1:
            found.append((r.finish_s - r.first_token_s) / (r.output_tokens - 1))
    return found


def _windows(done: Sequence[RequestRecord]) -> list[dict[str, float]]:
    by_window: dict[int, list[float]] = {}
    for r in done:
        if r.ttft_s is not None:
            by_window.setdefault(int(r.arrival_s // WINDOW_S), []).append(r.ttft_s)
    return [{"from_s": index * WINDOW_S, "requests": len(values),
             "p95": _round(percentile(values, 0.95))}
            for index, values in sorted(by_window.items())]  # fmt: skip


def _hit_rate(replicas: Sequence[SimReplica]) -> float:
    queries = sum(r.kv.prefix_queries for r in replicas)
    return sum(r.kv.prefix_hits for r in replicas) / queries if queries else 0.0


def _busy_fraction(replicas: Sequence[SimReplica], gpu_seconds: float) -> float:
    busy = sum(r.busy_s * r.shape.gpus for r in replicas)
    return busy / gpu_seconds if gpu_seconds > 0 else 0.0


def _busiest_share(done: Sequence[RequestRecord]) -> float:
    counts = Counter(r.replica for r in done)
    return max(counts.values()) / len(done) if done else 0.0


def _reasons(rejected: Sequence[RequestRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in rejected:
        kind = record.reason.partition(":")[0]  # "STATUS kind"
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def _gpu_seconds(replicas: Sequence[SimReplica], end_s: float) -> float:
    total = 0.0
    for sim in replicas:
        stopped = end_s if sim.stopped_s is None else sim.stopped_s
        total += (stopped - sim.started_s) * sim.shape.gpus
    return total


def _mean_replicas(timeline: Sequence[FleetSample], end_s: float) -> float:
    if not timeline or end_s <= 0:
        return float(timeline[-1].total) if timeline else 0.0
    area = 0.0
    for sample, following in zip(timeline, [*timeline[1:], None], strict=True):
        until = end_s if following is None else following.at_s
        area += sample.total * (until - sample.at_s)
    return area / end_s


def _sample(sample: FleetSample) -> dict[str, float]:
    return {"at_s": _round(sample.at_s), "starting": sample.starting, "ready": sample.ready,
            "draining": sample.draining, "sleeping": sample.sleeping}  # fmt: skip


def _queue(sample: QueueSample) -> dict[str, float]:
    return {"at_s": _round(sample.at_s), "waiting": sample.waiting, "in_flight": sample.in_flight}


def _event(event: ScaleEvent) -> dict[str, Any]:
    return {"at_s": _round(event.at_s), "from": event.current, "to": event.desired,
            "cause": event.cause, "reason": event.reason}  # fmt: skip


@dataclass(frozen=True)
class FleetReport:
    """A fleet simulation: requests for one model, routed to pools by the fleet's rules."""

    model: str
    requests: int
    finished: int
    rejected: int
    routes: dict[str, int]  # how many requests each rule's reason decided
    rejected_by_reason: dict[str, int]  # refusals of every kind, the rules' included
    ttft_s: Distribution
    latency_s: Distribution
    gpu_seconds: float
    cost_usd: float | None
    pools: dict[str, SimReport]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_fleet_report(
    model: str, records: Sequence[RequestRecord], routes: dict[str, int],
    pools: dict[str, SimReport],
) -> FleetReport:  # fmt: skip
    done = [r for r in records if r.outcome == "finished"]
    rejected = [r for r in records if r.outcome == "rejected"]
    costs = [report.cost_usd for report in pools.values()]
    return FleetReport(
        model=model,
        requests=len(records),
        finished=len(done),
        rejected=len(rejected),
        routes=routes,
        rejected_by_reason=_reasons(rejected),
        ttft_s=Distribution.of([r.ttft_s for r in done if r.ttft_s is not None]),
        latency_s=Distribution.of([r.latency_s for r in done if r.latency_s is not None]),
        gpu_seconds=_round(sum(report.gpu_seconds for report in pools.values())),
        cost_usd=None if None in costs else _round(sum(c for c in costs if c is not None)),
        pools=pools,
    )
