"""The gateway's books: a usage record and a cost for every request a replica served, budgets
checked at admission and settled with the real cost, and the cost metric.

The request path only notes a finished request (a tuple and an append); a background sweep
(every SWEEP_S, and at shutdown) shares each replica's busy time among its requests, prices
it, settles budgets, counts the cost (one metric update per model and team a sweep) and
appends the records to the spool in one write(). The gateway never touches the database:
the ledger writer, a process of its own (ledger/writer_process.py), stores the spool (a write
that fails, as on a full disk, keeps its rows for the next sweep's write). Costs
are the gateway's view (request spans, gateway/books/gpu_time.py) priced from the fleet's catalog:
a replica on a pool without a GPU, or one the catalog has no price for, costs nothing.
"""

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from inferplane.config.schema import FleetConfig, PoolSpec
from inferplane.gateway.admission.auth import ApiKey
from inferplane.gateway.books.gpu_time import ReplicaTimeline, Share
from inferplane.gateway.books.tap import Usage
from inferplane.ledger.budgets import Budget, BudgetBook, Decision, SharedCells, period_bounds
from inferplane.ledger.metrics import CostMetrics
from inferplane.ledger.pricing import PriceCatalog, catalog_for
from inferplane.ledger.spans import RequestSpan
from inferplane.ledger.spool import SpoolAppender
from inferplane.ledger.store import UsageStore
from inferplane.ledger.usage import MICRO, hash_user

log = logging.getLogger(__name__)
Clock = Callable[[], float]
SWEEP_S = 0.5
UNSPOOLED_ROWS = 100_000  # rows kept while the spool cannot be written (about 50 MB)
CPU = "cpu"


class Finished(NamedTuple):
    """One request a replica answered, as the app saw it (times on the gateway's clock)."""

    request_id: str
    key: ApiKey
    user: str | None
    model: str
    pool: str
    replica: str
    model_version: str
    started: float
    ended: float
    ttft_s: float | None
    status: int
    usage: Usage
    prompt_hash: int | None = None  # the body's digest (regenerations are found from it)


@dataclass(frozen=True)
class PoolPrice:
    gpu_type: str
    gpus: int
    hourly_usd: float  # per GPU


def pool_price(pool: PoolSpec, catalog: PriceCatalog, provider: str) -> PoolPrice:
    """What one replica of the pool costs an hour; CPU pools and unknown GPUs cost nothing."""
    resources = pool.resources
    if not resources.uses_gpu or resources.gpu == "none":
        return PoolPrice(CPU, 1, 0.0)
    try:
        hourly = catalog.hourly_usd(resources.gpu, provider, pool.capacity)
    except ValueError:
        hourly = None
    if hourly is None:
        log.warning(
            "no price for %s (%s, %s): its requests cost $0", resources.gpu, provider, pool.capacity
        )
    return PoolPrice(resources.gpu, resources.count, hourly or 0.0)


class Accountant:
    """Usage records, costs and budgets for one gateway process."""

    def __init__(  # noqa: PLR0917 (each is a seam)
        self,
        fleet: FleetConfig,
        budgets: Iterable[Budget],
        metrics: CostMetrics,
        spool: SpoolAppender | None,
        clock: Clock,
        wall: Clock,
        salt: str = "",
        shared: SharedCells | None = None,
    ) -> None:
        catalog = catalog_for(fleet.pricing)
        provider = fleet.pricing.provider
        self.prices = {name: pool_price(p, catalog, provider) for name, p in fleet.pools.items()}
        self.budgets = list(budgets)
        self.book = BudgetBook(self.budgets, wall, shared)  # shared: the workers' tallies
        self._budgeted = {(b.scope, b.name) for b in self.budgets}
        self._books = spool is not None or bool(self.budgets)
        self.metrics = metrics
        self.spool = spool
        self.clock = clock
        self.wall = wall
        self.salt = salt
        self._in_flight: dict[str, float] = {}
        self._finished: dict[str, Finished] = {}
        self._timelines: dict[tuple[str, str], ReplicaTimeline] = {}
        self._estimate: dict[str, int] = {}  # pool -> recent cost of a request, micro-$
        self._cost: dict[tuple[str, str], Any] = {}  # (model, team) -> its counter child
        self._unspooled: list[tuple[Any, ...]] = []  # rows a failed spool write kept

    def start(self, store: UsageStore | None = None) -> None:
        """Open the spool, and start each budget's period from what the ledger holds."""
        if self.spool is not None:
            self.spool.open()
        if store is not None and self.budgets:
            with store:
                for budget in self.budgets:
                    since, _ = period_bounds(budget.period, self.wall())
                    self.book.seed(budget, store.spend_micro(budget.scope, budget.name, since))

    def close(self) -> None:
        self.sweep(final=True)
        if self.spool is not None:
            self.spool.close()

    def has_budget(self, key: ApiKey) -> bool:
        return bool(self._budgeted) and (
            ("key", key.name) in self._budgeted or ("team", key.team) in self._budgeted
        )

    def admit(self, request_id: str, key: ApiKey, pool: str) -> Decision:
        """Reserve a typical request's cost against the key's and team's budgets."""
        decision = self.book.admit(request_id, key.name, key.team, self._estimate.get(pool, 0))
        if decision.warnings or decision.exceeded:
            self.metrics.observe_budget(decision)
        return decision

    def begin(self, request_id: str, started: float) -> None:
        self._in_flight[request_id] = started

    def abandon(self, request_id: str) -> None:
        """The request ended without a replica's answer: nothing to charge."""
        self._in_flight.pop(request_id, None)
        self.book.settle(request_id, 0)

    def finish(self, done: Finished) -> None:
        self._in_flight.pop(done.request_id, None)
        if not self._books and not self.prices[done.pool].hourly_usd:
            return  # free (CPU) replicas, no ledger, no budget: nothing to account
        self._finished[done.request_id] = done
        span = RequestSpan(done.request_id, done.started, done.ended, _work(done.usage))
        self._timeline(done.pool, done.replica).finished(span)

    def sweep(self, final: bool = False) -> int:
        """Price what can be priced now; returns how many requests were charged."""
        now = self.clock()
        cut = now if final or not self._in_flight else min(self._in_flight.values())
        shares = [s for timeline in self._timelines.values() for s in timeline.sweep(cut)]
        if not shares:
            self._spool_rows([])  # what a failed write kept, if anything
            return 0
        finished = [self._finished.pop(share.span.request_id) for share in shares]
        costs: Counter[tuple[str, str]] = Counter()
        for done, share in zip(finished, shares, strict=True):
            self._charge(done, share.cost_micro_usd)
            costs[done.model, done.key.team or "none"] += share.cost_micro_usd
        for (model, team), micro_usd in costs.items():
            self._count_cost(model, team, micro_usd)
        if self.spool is not None:  # one spool write per sweep, not one per request
            offset = self.wall() - now  # the gateway's clock -> Unix time
            rows = [self.row(d, s, offset) for d, s in zip(finished, shares, strict=True)]
            self._spool_rows(rows)
        return len(shares)

    def _spool_rows(self, rows: list[tuple[Any, ...]]) -> None:
        """One spool write for `rows` and whatever an earlier failed write kept (a full disk):
        those go first, and at most UNSPOOLED_ROWS wait; the oldest beyond are lost."""
        if self.spool is None or not (rows or self._unspooled):
            return
        waiting = self._unspooled + rows
        try:
            self.spool.append(waiting)
        except OSError as error:
            self._unspooled = waiting[-UNSPOOLED_ROWS:]
            lost = len(waiting) - len(self._unspooled)
            log.warning(
                "usage records could not be spooled (%s): %d wait for the next sweep%s",
                error,
                len(self._unspooled),
                f", {lost} oldest lost" if lost else "",
            )
            return
        if self._unspooled:
            log.info("the %d usage records that waited are spooled", len(self._unspooled))
        self._unspooled = []

    def _timeline(self, pool: str, replica: str) -> ReplicaTimeline:
        timeline = self._timelines.get((pool, replica))
        if timeline is None:
            price = self.prices.get(pool, PoolPrice(CPU, 1, 0.0))
            timeline = ReplicaTimeline(price.hourly_usd, price.gpus)
            self._timelines[(pool, replica)] = timeline
        return timeline

    def _charge(self, done: Finished, cost_micro: int) -> None:
        """Settle the budget, and keep a typical request's cost for the next admissions."""
        if self._budgeted:
            self.book.settle(done.request_id, cost_micro)
        previous = self._estimate.get(done.pool, cost_micro)
        self._estimate[done.pool] = (previous * 7 + cost_micro) // 8

    def _count_cost(self, model: str, team: str, micro_usd: int) -> None:
        # The child is looked up once per label pair: labels() takes a lock and builds a key.
        child = self._cost.get((model, team))
        if child is None:
            child = self._cost[(model, team)] = self.metrics.cost.labels(model=model, team=team)
        child.inc(micro_usd / MICRO)

    def row(self, done: Finished, share: Share, offset: float) -> tuple[Any, ...]:
        """The ledger's row, in ROW_FIELDS order (built without a UsageRecord: this runs for
        every request); `offset` turns the gateway's clock into Unix time."""
        usage = done.usage
        price = self.prices.get(done.pool) or PoolPrice(CPU, 1, 0.0)
        return (
            offset + done.started,  # time
            done.request_id,
            done.model,
            done.pool,
            done.replica,
            price.gpu_type,
            share.gpu_seconds,
            share.cost_micro_usd,
            "request",  # kind
            done.key.name,
            done.key.team,
            hash_user(done.user, self.salt) if done.user else "",
            done.model_version,
            usage.prompt_tokens,
            usage.cached_tokens,
            usage.completion_tokens,
            done.ttft_s,
            done.ended - done.started,  # duration_s
            _status(done.status, usage),
            usage.mean_logprob,
            usage.low_confidence_share,
            done.prompt_hash,
        )


def _work(usage: Usage) -> int:
    """Tokens the replica processed: cached prompt tokens cost it (almost) nothing."""
    return max(usage.prompt_tokens - usage.cached_tokens, 0) + usage.completion_tokens


def _status(status: int, usage: Usage) -> str:
    if status != 200:
        return f"http_{status}"
    return "ok_estimated" if usage.estimated else "ok"
