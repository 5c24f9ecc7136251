"""The gateway's part: route each arrival with the real balancing policy over real snapshots.

Replicas enter and leave the gateway's real ReplicaRegistry as the controller publishes them
(ready ones only). Each arrival becomes the gateway's RouteRequest; the policy picks among the
registry's snapshots. As in the gateway, `in_flight` and the TTFT average move at once with
its own traffic, while waiting / running / KV usage come from a scrape of each replica every
health interval, so the balancer sees them as stale as it would in production.

With no routable replica a request is held in the controller's own HoldQueue: up to
`max_held` requests for up to `hold_timeout_s` each, sent on in arrival order as soon as a
replica is ready; beyond that the client gets 503. Snapshots carry `outstanding_work` (prompt +
max tokens the gateway sent and has not seen finish), which predicted_work ranks by.
"""

import dataclasses
from collections.abc import Callable, Sequence

from inferplane.control.holding import HoldQueue
from inferplane.control.settings import ControllerConfig
from inferplane.gateway.routing.balancer import Policy
from inferplane.gateway.routing.health import HealthConfig
from inferplane.gateway.routing.registry import Replica, ReplicaRegistry, replica_id
from inferplane.gateway.types import ReplicaSnapshot, RouteRequest
from inferplane.sim.events import EventLoop
from inferplane.sim.records import RequestRecord
from inferplane.sim.replica import SimReplica

_CONTROLLER = ControllerConfig()
_HEALTH = HealthConfig()
_PREFIX_BLOCKS = 32  # the gateway hashes at most this many leading blocks


@dataclasses.dataclass(frozen=True)
class GatewaySettings:
    """The gateway and controller defaults that shape routing (health interval, holding)."""

    scrape_interval_s: float = _HEALTH.interval_s
    hold_timeout_s: float = _CONTROLLER.hold_timeout_s
    max_held: int = _CONTROLLER.max_held
    block_size: int = 16  # prefix hashes cover whole blocks of this many tokens


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
    ) -> None:
        self.pool, self.model, self.policy, self.loop = pool, model, policy, loop
        self.settings = settings
        self.on_hold = on_hold
        self.registry = ReplicaRegistry({pool: model})
        self.replicas: dict[str, SimReplica] = {}
        self.records: dict[str, Replica] = {}  # the gateway's record of every replica it knew
        self.outstanding: dict[str, int] = {}
        self.held: HoldQueue[RequestRecord] = HoldQueue(settings.max_held, settings.hold_timeout_s)
        self.arrivals = 0  # since the controller last read them
        self.rejected = 0

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
                self.outstanding[sim.id] = 0
        if ready:
            self._release_held()

    def scrape(self) -> None:
        for record in self.registry.replicas(self.pool):
            sim = self.replicas[record.id]
            record.waiting = sim.scheduler.num_waiting
            record.running = sim.scheduler.num_running
            record.kv_usage = sim.kv.usage

    # -- requests -----------------------------------------------------------------------------

    def arrive(self, record: RequestRecord) -> None:
        self.arrivals += 1
        if not self._dispatch(record):
            self._hold(record)

    def route_request(self, record: RequestRecord) -> RouteRequest:
        return RouteRequest(
            model=self.model,
            task="chat",
            est_prompt_tokens=record.prompt_tokens,
            max_tokens=record.max_tokens,
            prefix_hashes=self._prefix_hashes(record),
        )

    def snapshots(self) -> list[ReplicaSnapshot]:
        return [
            dataclasses.replace(snapshot, outstanding_work=self.outstanding[snapshot.id])
            for snapshot in self.registry.snapshots(self.pool)
        ]

    def _dispatch(self, record: RequestRecord) -> bool:
        """Send the record where the policy says; False when no replica is routable."""
        chosen = self.policy.select(self.route_request(record), self.snapshots())
        if chosen is None:
            return False
        sim = self.replicas[chosen]
        refusal = sim.refusal(record)
        record.replica, record.dispatched_s = chosen, self.loop.clock.now
        if refusal is not None:
            self._reject(record, refusal)
            return True
        self.records[chosen].in_flight += 1
        self.outstanding[chosen] += record.prompt_tokens + record.max_tokens
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

    def finished(self, sim: SimReplica, record: RequestRecord) -> None:
        self.records[sim.id].in_flight -= 1
        self.outstanding[sim.id] -= record.prompt_tokens + record.max_tokens

    def _prefix_hashes(self, record: RequestRecord) -> tuple[int, ...]:
        """Chained hashes of the synthetic prompt's leading blocks (unique per request)."""
        blocks = min(record.prompt_tokens // self.settings.block_size, _PREFIX_BLOCKS)
        return tuple(hash((record.index, block)) for block in range(blocks))
