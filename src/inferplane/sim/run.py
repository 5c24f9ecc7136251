"""simulate() and simulate_fleet(): replay a trace through a fleet's pools.

Wires the parts on one event loop: arrivals from the trace go to a pool's SimGateway (real
policy, real registry), which feeds SimReplicas (real scheduler and KV cache, planner step
times); every controller interval each pool's SimScaler asks the real autoscaler for its size,
and every health interval each gateway scrapes its replicas. A pool's minimum is up and ready
at the first arrival (start_ready) unless told to start cold.

`simulate` sends every request to one named pool. `simulate_fleet` routes each request by the
fleet's own rules (gateway/routing/rules.Router: canaries, splits, tiers, defaults, aliases)
to a pool, and simulates every pool that gets traffic; requests the rules refuse count as
refused with the rules' reason. Once routed, pools share nothing, so with `workers` > 1 each
pool runs in a process of its own (forked: the trace is not copied), the results the same as
on one loop except that each pool ends when it settles rather than when the last one does.

The run ends when every request has finished or been refused and every pool has settled at its
floor (its minimum, or zero) or `max_tail_s` after the last request, whichever comes first, so
the cost of scaling back down is counted.
"""

import multiprocessing
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from inferplane.config.schema import Balancing, FleetConfig
from inferplane.gateway.routing.balancer import POLICIES, policy_from_config
from inferplane.ledger.pricing import canonical_gpu, catalog_for
from inferplane.planner.gpus import get_gpu
from inferplane.sim.clock import SimClock
from inferplane.sim.events import EventLoop
from inferplane.sim.faults import PoolFaults
from inferplane.sim.pool import (
    DEFAULT_COLD_START_S,
    DEFAULT_WAKE_S,
    PoolHooks,
    SimOptions,
    SimPool,
    sized,
)
from inferplane.sim.records import RequestRecord
from inferplane.sim.report import FleetReport, RunFacts, SimReport, build_fleet_report, build_report
from inferplane.sim.routing import route_records
from inferplane.sim.trace import Trace

__all__ = ["DEFAULT_COLD_START_S", "DEFAULT_WAKE_S", "SimOptions", "simulate", "simulate_fleet"]


def simulate(
    fleet: FleetConfig,
    pool_name: str,
    trace: Trace,
    gpu: str | None = None,
    policy: str | None = None,
    *,
    options: SimOptions | None = None,
) -> SimReport:
    """Replay `trace` through the fleet's pool `pool_name`; deterministic for a seed."""
    run = _Run(fleet, trace, gpu, policy, options or SimOptions())
    run.pool(pool_name)
    for record in run.records:
        record.pool = pool_name
    run.replay()
    return run.report(pool_name)


def simulate_fleet(
    fleet: FleetConfig,
    model: str,
    trace: Trace,
    gpu: str | None = None,
    policy: str | None = None,
    *,
    options: SimOptions | None = None,
    workers: int = 1,
) -> FleetReport:
    """Replay `trace` as requests for `model`, each sent to a pool by the fleet's rules."""
    run = _Run(fleet, trace, gpu, policy, options or SimOptions())
    routes = route_records(fleet, model, run.records, trace.block_tokens, run.options.block_size)
    if workers > 1 and len(routes.pools) > 1:
        reports = _apart(run, routes.pools, workers)
    else:
        for name in routes.pools:
            run.pool(name)
        run.replay()
        reports = {name: run.report(name) for name in routes.pools}
    return build_fleet_report(model, run.records, routes.reasons, reports)


_OUTCOME = ("replica", "dispatched_s", "first_token_s", "finish_s", "output_tokens",
            "cached_tokens", "attempts", "held", "outcome", "reason")  # fmt: skip


def _apart(run: "_Run", pools: Sequence[str], workers: int) -> dict[str, SimReport]:
    """Each pool simulated in a forked process, `workers` at a time; the records' outcomes
    copied back."""
    context = multiprocessing.get_context("fork")
    reports: dict[str, SimReport] = {}
    for first in range(0, len(pools), workers):
        started = []
        for name in pools[first : first + workers]:
            receiving, sending = context.Pipe(duplex=False)
            process = context.Process(target=_alone, args=(run, name, sending), daemon=True)
            process.start()
            sending.close()
            started.append((name, receiving, process))
        for name, receiving, process in started:
            report, outcomes = receiving.recv()
            process.join()
            reports[name] = report
            for index, values in outcomes:
                record = run.records[index]
                for field, value in zip(_OUTCOME, values, strict=True):
                    setattr(record, field, value)
    return reports


def _alone(run: "_Run", name: str, results: Connection) -> None:
    """In a child process: simulate pool `name` with its own records only."""
    mine = [r for r in run.records if r.pool == name]
    alone = _Run(run.fleet, run.trace, run.gpu, run.policy, run.options, records=mine)
    alone.pool(name)
    alone.replay()
    outcomes = [(r.index, tuple(getattr(r, f) for f in _OUTCOME)) for r in alone.records]
    results.send((alone.report(name), outcomes))
    results.close()


class _Run:
    """One simulation's pools on one event loop."""

    def __init__(
        self,
        fleet: FleetConfig,
        trace: Trace,
        gpu: str | None,
        policy: str | None,
        options: SimOptions,
        *,
        records: list[RequestRecord] | None = None,
    ) -> None:
        self.fleet, self.trace, self.gpu, self.options = fleet, trace, gpu, options
        self.policy, self.balancing = policy, _balancing(fleet.balancing, policy)
        self.loop = EventLoop(SimClock())
        self.hooks = PoolHooks(self._wake, self._finished)
        self.pools: dict[str, SimPool] = {}
        self.records = (
            records
            if records is not None
            else [
                RequestRecord(i, r.arrival_s, r.prompt_tokens, r.output_tokens, r.hash_ids)
                for i, r in enumerate(trace.requests)
            ]
        )
        self.finished = 0
        self.last_work_s = 0.0
        self.end_s: float | None = None
        self._wake_due = False
        self._arrivals: list[RequestRecord] = []
        self._next = 0

    def pool(self, name: str) -> SimPool:
        found = self.pools.get(name)
        if found is not None:
            return found
        spec = self.fleet.pools.get(name)
        if spec is None:
            known = ", ".join(self.fleet.pools)
            raise ValueError(f"unknown pool {name!r}: the fleet defines {known}")
        if spec.is_external:
            raise ValueError(f"pool {name!r} fronts external endpoints: simulate a managed pool")
        spec = sized(spec, self.options)
        gpu = get_gpu(canonical_gpu(_gpu_name(spec.resources.gpu, self.gpu)))
        policy = policy_from_config(self.balancing, self.options.seed)
        found = SimPool(name, self.fleet, spec, gpu, policy, self.loop, self.options, self.hooks,
                        self.trace.block_tokens)  # fmt: skip
        found.scaler.epoch_offset = self.trace.start_epoch
        PoolFaults(self.options.faults, name, found.scaler, self.loop, self.options.seed,
                   spec.capacity == "spot")  # fmt: skip
        self.pools[name] = found
        return found

    def replay(self) -> None:
        self._arrivals = [r for r in self.records if r.pool and r.outcome == "pending"]
        for record in self._arrivals:
            self.pools[record.pool].records.append(record)
        for pool in self.pools.values():
            pool.start()
        if self._arrivals:
            self.loop.at(self._arrivals[0].arrival_s, self._arrive)
        self.loop.at(0.0, self._scrape)
        self.loop.at(0.0, self._tick)
        self.loop.run()

    def report(self, name: str) -> SimReport:
        pool = self.pools[name]
        hourly = catalog_for(self.fleet.pricing).hourly_usd(
            pool.gpu.name, self.fleet.pricing.provider, pool.spec.capacity
        )
        facts = RunFacts(
            pool=name, policy=pool.policy_name, gpu=pool.gpu.name, model=pool.model.shape.name,
            seed=self.options.seed, records=pool.records, replicas=pool.scaler.replicas,
            timeline=pool.scaler.timeline, events=pool.scaler.events, queue=pool.scaler.queue,
            end_s=self.end_s or 0.0,
            hourly_usd=hourly, settings=self._settings(pool), restarts=pool.scaler.restarts,
            reclaims=pool.scaler.reclaims,
        )  # fmt: skip
        return build_report(facts)

    def _settings(self, pool: SimPool) -> dict[str, Any]:
        trace = self.trace
        return {"trace": trace.source, "trace_requests": len(trace),
                "trace_span_s": trace.span_s, **pool.settings()}  # fmt: skip

    # -- periodic work ------------------------------------------------------------------------

    def _arrive(self) -> None:
        record = self._arrivals[self._next]
        self._next += 1
        self.pools[record.pool].gateway.arrive(record)
        if self._next < len(self._arrivals):
            self.loop.at(self._arrivals[self._next].arrival_s, self._arrive)

    def _scrape(self) -> None:
        if self._running():
            for pool in self.pools.values():
                pool.gateway.scrape()
            self.loop.after(self.options.gateway.scrape_interval_s, self._scrape)

    def _tick(self) -> None:
        if not self._running():
            return
        for pool in self.pools.values():
            pool.scaler.tick()
        self.loop.after(self.options.controller_interval_s, self._tick)

    def _wake(self) -> None:
        """A held request ticks its pool's controller now; wakes before that tick coalesce."""
        if not self._wake_due:
            self._wake_due = True
            self.loop.after(0.0, self._woken)

    def _woken(self) -> None:
        self._wake_due = False
        for pool in self.pools.values():
            if pool.gateway.held:
                pool.scaler.tick()

    def _finished(self, record: RequestRecord) -> None:
        self.finished += 1

    @property
    def pending(self) -> int:
        rejected = sum(pool.gateway.rejected for pool in self.pools.values())
        return self._next - self.finished - rejected

    def _running(self) -> bool:
        """Whether requests remain, or the pools are still settling after the last of them."""
        if self.end_s is not None:
            return False
        now = self.loop.clock.now
        if self._next < len(self._arrivals) or self.pending:
            self.last_work_s = now
            return True
        settled = all(pool.settled() for pool in self.pools.values())
        if settled or now - self.last_work_s >= self.options.max_tail_s:
            self.end_s = now
            self.loop.stop()
            return False
        return True


def _gpu_name(pool_gpu: str, gpu: str | None) -> str:
    if gpu is not None:
        return gpu
    if pool_gpu == "none":
        raise ValueError("the pool runs without a GPU: name one to simulate, e.g. --gpu H100")
    return pool_gpu


def _balancing(balancing: Balancing, policy: str | None) -> Balancing:
    if policy is None:
        return balancing
    if policy not in POLICIES:
        raise ValueError(f"unknown balancing policy {policy!r}: use one of {', '.join(POLICIES)}")
    return Balancing(policy=policy, load_bound=balancing.load_bound)  # type: ignore[arg-type]
