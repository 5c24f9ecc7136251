"""The status page: pools, replicas and live charts of requests/s, TTFT, queue depth and cost.

`StatusBoard` builds the page's JSON (`/ui/status.json`) from the replica registry and a ring
buffer of samples it takes from a Prometheus registry (counter and histogram deltas between
samples, so the numbers match what Prometheus would compute); a gateway with several workers
gives it every worker's totals instead of its own (telemetry/worker_totals.py).
`StatusPage` is a plain ASGI app serving the static files in ui/ (no build step, no CDN) and
that JSON; `with_status_page` wraps any ASGI app so /ui goes to the page and everything else
to the app, and samples once a second while the app runs.
"""

import asyncio
import contextlib
import functools
import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from inferplane.telemetry import names

Clock = Callable[[], float]
ASGIApp = Callable[[Any, Any, Any], Any]
STATIC = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}


class ReplicaView(Protocol):
    """What the page shows of a replica (the gateway's Replica and ReplicaSnapshot fit)."""

    @property
    def id(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def waiting(self) -> int: ...
    @property
    def running(self) -> int: ...
    @property
    def kv_usage(self) -> float: ...
    @property
    def ewma_ttft_s(self) -> float: ...


ReplicaSource = Callable[[], Mapping[str, Sequence[ReplicaView]]]


@dataclass(frozen=True)
class Totals:
    """Cumulative counts read from a registry at one moment."""

    at: float
    requests: float
    ttft_buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count)
    cost: float


@dataclass(frozen=True)
class Point:
    t: float  # unix seconds
    requests_per_s: float
    ttft_p50_s: float | None  # None: no first token in the interval
    queue_depth: float
    cost_per_hour: float


TotalsSource = Callable[[float], Totals]  # the totals at a monotonic time


def read_totals(registry: CollectorRegistry, at: float) -> Totals:
    requests = cost = 0.0
    buckets: dict[float, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == names.REQUESTS.name + "_total":
                requests += sample.value
            elif sample.name == names.COST_DOLLARS.name + "_total":
                cost += sample.value
            elif sample.name == names.TIME_TO_FIRST_TOKEN.name + "_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return Totals(at, requests, tuple(sorted(buckets.items())), cost)


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus's histogram_quantile over cumulative (bound, count) pairs; None if empty."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 0.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def _delta(now: Totals, then: Totals) -> tuple[tuple[float, float], ...]:
    before = dict(then.ttft_buckets)
    # clamped: a restarted worker's counts start again from zero (telemetry/worker_totals.py)
    return tuple(
        (bound, max(count - before.get(bound, 0.0), 0.0)) for bound, count in now.ttft_buckets
    )


class StatusBoard:
    """The page's data: pools and replicas now, plus the last `capacity` samples."""

    def __init__(  # noqa: PLR0917 (each is a seam)
        self,
        replicas: ReplicaSource,
        pool_models: Mapping[str, str],
        registry: CollectorRegistry,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        interval_s: float = 1.0,
        capacity: int = 300,
        *,
        totals: TotalsSource | None = None,
    ) -> None:
        self.replicas = replicas
        self.pool_models = dict(pool_models)
        self.registry = registry
        self.totals: TotalsSource = totals or functools.partial(read_totals, registry)
        self.clock = clock
        self.wall = wall
        self.interval_s = interval_s
        self.points: deque[Point] = deque(maxlen=capacity)
        self._last: Totals | None = None

    def sample(self) -> None:
        """Take a sample if `interval_s` has passed since the last one."""
        now = self.clock()
        if self._last is not None and now - self._last.at < self.interval_s:
            return
        totals = self.totals(now)
        if self._last is not None:
            self.points.append(self._point(totals, self._last))
        self._last = totals

    def _point(self, now: Totals, then: Totals) -> Point:
        elapsed = max(now.at - then.at, 1e-9)
        return Point(
            t=round(self.wall(), 3),
            requests_per_s=max(now.requests - then.requests, 0.0) / elapsed,
            ttft_p50_s=bucket_quantile(0.5, _delta(now, then)),
            queue_depth=float(sum(r.waiting for rs in self.replicas().values() for r in rs)),
            cost_per_hour=max(now.cost - then.cost, 0.0) / elapsed * 3600.0,
        )

    def status(self) -> dict[str, Any]:
        self.sample()
        pools = [self._pool(name, list(rs)) for name, rs in self.replicas().items()]
        series: dict[str, list[Any]] = {key: [] for key in Point.__dataclass_fields__}
        for point in self.points:
            for key, value in asdict(point).items():
                series[key].append(value)
        latest = asdict(self.points[-1]) if self.points else None
        return {
            "generated_at": self.wall(),
            "interval_s": self.interval_s,
            "totals": {
                "pools": len(pools),
                "replicas": sum(len(p["replicas"]) for p in pools),
                "ready": sum(p["ready"] for p in pools),
                "requests": None if self._last is None else self._last.requests,
                "latest": latest,
            },
            "pools": pools,
            "series": series,
        }

    def _pool(self, name: str, replicas: Iterable[ReplicaView]) -> dict[str, Any]:
        rows = [
            {
                "id": r.id,
                "url": r.url,
                "state": r.state,
                "in_flight": r.in_flight,
                "waiting": r.waiting,
                "running": r.running,
                "kv_usage": r.kv_usage,
                "ewma_ttft_s": r.ewma_ttft_s,
            }
            for r in replicas
        ]
        ready = sum(1 for row in rows if row["state"] == "ready")
        return {
            "name": name,
            "model": self.pool_models.get(name, ""),
            "ready": ready,
            "replicas": rows,
        }


class _Registry(Protocol):
    pool_models: dict[str, str]

    def pools(self) -> list[str]: ...
    def replicas(self, pool: str) -> Sequence[ReplicaView]: ...


class _Metrics(Protocol):
    registry: CollectorRegistry


class GatewayLike(Protocol):
    """The parts of the gateway's state the board reads."""

    @property
    def registry(self) -> _Registry: ...
    @property
    def metrics(self) -> _Metrics: ...


def gateway_status_board(
    state: GatewayLike, interval_s: float = 1.0, totals: TotalsSource | None = None
) -> StatusBoard:
    """A board over a running gateway's replica registry and metrics (`totals`: where the
    counts come from when not from this process's metrics alone)."""
    registry = state.registry

    def replicas() -> dict[str, Sequence[ReplicaView]]:
        return {pool: registry.replicas(pool) for pool in registry.pools()}

    return StatusBoard(
        replicas,
        registry.pool_models,
        state.metrics.registry,
        interval_s=interval_s,
        totals=totals,
    )


class StatusPage:
    """ASGI app for /ui: the static page and /ui/status.json (GET and HEAD only)."""

    def __init__(self, board: StatusBoard, prefix: str = "/ui") -> None:
        self.board = board
        self.prefix = prefix
        self._files: dict[str, bytes] = {}

    def handles(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        name = path[len(self.prefix) :].lstrip("/") or "index.html"
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b'{"error":"GET only"}', "application/json")
        elif path == self.prefix:
            await _respond(
                send, 308, b"", "text/plain", [(b"location", (self.prefix + "/").encode())]
            )
        elif name == "status.json":
            body = json.dumps(self.board.status(), allow_nan=False).encode()
            await _respond(send, 200, body, "application/json")
        elif name in STATIC:
            await _respond(send, 200, self._file(name), STATIC[name] + "; charset=utf-8")
        else:
            await _respond(send, 404, b'{"error":"not found"}', "application/json")

    def _file(self, name: str) -> bytes:
        if name not in self._files:  # read on first use: constructors do no I/O
            folder = resources.files("inferplane.telemetry") / "ui"
            self._files[name] = (folder / name).read_bytes()
        return self._files[name]


async def _respond(
    send: Any,
    status: int,
    body: bytes,
    content_type: str,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class WithStatusPage:
    """`app` with /ui served by the page, and a sample taken every interval while it runs."""

    def __init__(self, app: ASGIApp, page: StatusPage) -> None:
        self.app = app
        self.page = page

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.page.handles(scope["path"]):
            await self.page(scope, receive, send)
        elif scope["type"] == "lifespan":
            sampler = asyncio.create_task(self._sample_forever())
            try:
                await self.app(scope, receive, send)
            finally:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
        else:
            await self.app(scope, receive, send)

    async def _sample_forever(self) -> None:
        board = self.page.board
        while True:
            board.sample()
            await asyncio.sleep(board.interval_s)


def with_status_page(app: ASGIApp, board: StatusBoard) -> WithStatusPage:
    """Serve the status page at /ui in front of `app` (the gateway mounts it this way)."""
    return WithStatusPage(app, StatusPage(board))
