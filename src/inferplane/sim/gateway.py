"""The gateway's part: route each arrival with the real balancing policy over real snapshots.

Replicas enter and leave the gateway's real ReplicaRegistry as the controller publishes them
(ready ones only). Each arrival becomes the gateway's RouteRequest, its prefix hashes the
gateway's own hashing of the prompt's opening text (sim/prompts.py); the policy picks among the
registry's snapshots. As in the gateway, `in_flight`, `outstanding_work` and the TTFT average
move at once with its own traffic, while waiting / running / KV usage come from a scrape of
each replica every health interval, so the balancer sees them as stale as it would in
production. Snapshots are rebuilt only for the replicas whose record changed since the last
arrival: the same list the registry would give, without rebuilding a thousand of them.

With no routable replica a request is held in the controller's own HoldQueue: up to
`max_held` requests for up to `hold_timeout_s` each, sent on in arrival order as soon as a
replica is ready; beyond that the client gets 503. When a replica dies (a crash, a spot
reclaim), its requests without a first token fail over to another replica as the proxy does
(up to `max_attempts`, within the real RetryBudget); those already streaming end with 502.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from inferplane.control.holding import HoldQueue
from inferplane.control.settings import ControllerConfig
from inferplane.gateway.routing.balancer import Policy
from inferplane.gateway.routing.health import HealthConfig
from inferplane.gateway.routing.registry import Replica, ReplicaRegistry, replica_id
from inferplane.gateway.transport.retry import RetryBudget, RetryConfig
from inferplane.gateway.types import ReplicaSnapshot, RouteRequest
from inferplane.sim.events import EventLoop
from inferplane.sim.prompts import Prompts
from inferplane.sim.records import RequestRecord
from inferplane.sim.replica import SimReplica

_CONTROLLER = ControllerConfig()
_HEALTH = HealthConfig()


@dataclass(frozen=True)
class GatewaySettings:
    """The gateway and controller defaults that shape routing (health interval, holding)."""

    scrape_interval_s: float = _HEALTH.interval_s
    hold_timeout_s: float = _CONTROLLER.hold_timeout_s
    max_held: int = _CONTROLLER.max_held
    retry: RetryConfig = field(default_factory=RetryConfig)


class SimGateway:
    """Routes records to simulated replicas of one pool through a real policy."""

    def __init__(  # noqa: PLR0917 (each is a seam)
        self,
        pool: str,
        model: str,
        policy: Policy,
        loop: EventLoop,
        settings: GatewaySettings,
        on_hold: Callable[[], None],
        prompts: Prompts | None = None,
    ) -> None:
        self.pool, self.model, self.policy, self.loop = pool, model, policy, loop
        self.settings = settings
        self.on_hold = on_hold
        self.prompts = prompts or Prompts(0, 16)
        self.registry = ReplicaRegistry({pool: model})
        self.replicas: dict[str, SimReplica] = {}
        self.records: dict[str, Replica] = {}  # the gateway's record of every replica it knew
        self.held: HoldQueue[RequestRecord] = HoldQueue(settings.max_held, settings.hold_timeout_s)
        self.retries = RetryBudget(settings.retry, loop.clock)
        self.arrivals = 0  # since the controller last read them
        self.rejected = 0
        self._snapshots: list[ReplicaSnapshot] = []
        self._position: dict[str, int] = {}
        self._dirty: set[str] = set()

    @staticmethod
    def replica_url(name: str) -> str:
        return f"http://{name}"

    def replica_id(self, name: str) -> str:
        return replica_id(self.pool, self.replica_url(name))

    # -- membership ---------------------------------------------------------------------------

    def publish(self, ready: Sequence[SimReplica]) -> None:
        """Make the pool's routable set exactly `ready` (the controller's _publish)."""
        self.registry.set_replicas(self.pool, [self.replica_url(r.name) for r in ready])
        for sim in ready:
            self.replicas[sim.id] = sim
            record = self.registry.get(self.pool, sim.id)
            if record is not None and sim.id not in self.records:
                self.records[sim.id] = record
        self._snapshots = self.registry.snapshots(self.pool)
        self._position = {snapshot.id: i for i, snapshot in enumerate(self._snapshots)}
        self._dirty.clear()
        if ready:
            self._release_held()

    def scrape(self) -> None:
        for record in self.registry.replicas(self.pool):
            sim = self.replicas[record.id]
            sim.settle()
            waiting, running = sim.scheduler.num_waiting, sim.scheduler.num_running
            usage = sim.kv.usage
            if (waiting, running, usage) != (record.waiting, record.running, record.kv_usage):
                record.waiting, record.running, record.kv_usage = waiting, running, usage
                self._dirty.add(record.id)

    def snapshots(self) -> list[ReplicaSnapshot]:
        """The registry's snapshots of the routable replicas, as they are now."""
        for rid in self._dirty:
            position = self._position.get(rid)
            if position is not None:
                self._snapshots[position] = self.records[rid].snapshot()
        self._dirty.clear()
        return self._snapshots

    # -- requests -----------------------------------------------------------------------------

    def arrive(self, record: RequestRecord) -> None:
        self.arrivals += 1
        self.retries.on_request()
        if not self._dispatch(record):
            self._hold(record)

    def route_request(self, record: RequestRecord) -> RouteRequest:
        reads = self.policy.reads_prefix
        hashes = self.prompts.route_hashes(self.prompts.runs(record)) if reads else ()
        return RouteRequest(
            model=self.model,
            task="chat",
            est_prompt_tokens=record.prompt_tokens,
            max_tokens=record.max_tokens,
            prefix_hashes=hashes,
        )

    def _dispatch(self, record: RequestRecord) -> bool:
        """Send the record where the policy says; False when no replica is routable."""
        snapshots = self.snapshots()
        if not snapshots:
            return False
        chosen = self.policy.select(self.route_request(record), snapshots)
        if chosen is None:
            return False
        sim = self.replicas[chosen]
        refusal = sim.refusal(record)
        record.replica, record.dispatched_s = chosen, self.loop.clock.now
        record.attempts += 1
        if refusal is not None:
            self._reject(record, refusal)
            return True
        gateway_record = self.records[chosen]
        gateway_record.in_flight += 1
        gateway_record.outstanding_work += record.prompt_tokens + record.max_tokens
        self._dirty.add(chosen)
        sim.add(record)
        return True

    def _hold(self, record: RequestRecord) -> None:
        if not self.held.hold(record, self.loop.clock.now):
            self._reject(record, f"503 no_healthy_replica: {len(self.held)} requests held")
            return
        record.held = True
        self.loop.after(self.settings.hold_timeout_s, self._expire_held)
        self.on_hold()

    def _expire_held(self) -> None:
        hold = f"{self.settings.hold_timeout_s:g} s"
        for record in self.held.expire(self.loop.clock.now):
            self._reject(record, f"503 no_healthy_replica: none ready within the {hold} hold")

    def _reject(self, record: RequestRecord, reason: str) -> None:
        record.reject(reason)
        self.rejected += 1

    def _release_held(self) -> None:
        for record in self.held.release():
            if not self._dispatch(record):  # the proxy's second pick found none: 503
                self._reject(record, "503 no_healthy_replica: none routable after the hold")

    def first_token(self, sim: SimReplica, record: RequestRecord) -> None:
        if record.first_token_s is not None and record.dispatched_s is not None:
            self.records[sim.id].observe_ttft(record.first_token_s - record.dispatched_s)
            self._dirty.add(sim.id)

    def finished(self, sim: SimReplica, record: RequestRecord) -> None:
        self._settle_record(sim.id, record)

    def _settle_record(self, rid: str, record: RequestRecord) -> None:
        gateway_record = self.records[rid]
        gateway_record.in_flight -= 1
        gateway_record.outstanding_work -= record.prompt_tokens + record.max_tokens
        self._dirty.add(rid)

    def lost(self, sim: SimReplica, records: Sequence[RequestRecord], why: str) -> None:
        """The replica died holding `records`: fail over those not yet answering, end the rest."""
        for record in records:
            self._settle_record(sim.id, record)
            if record.first_token_s is not None:
                self._reject(record, f"502 stream_broken: {why} mid-response")
            elif record.attempts < self.settings.retry.max_attempts and self.retries.try_spend():
                if not self._dispatch(record):
                    self._hold(record)
            else:
                self._reject(record, f"502 upstream_error: {why}; no retry left")
