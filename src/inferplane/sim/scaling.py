"""The controller's part: size the pool with the real autoscaler, start, wake, drain, sleep
and stop replicas, choosing them with the controller's own functions.

Every controller interval the pool's Signals come from control/signals.pool_signals, the
function the controller calls (each routable replica's waiting, in-flight and KV usage from the
gateway's registry; arrivals since the last tick; requests held for a replica counted as
waiting), and the real Autoscaler decides. A request held at zero replicas ticks at once, as
the controller's `hold` wakes it.

Which replicas come and go is control/resize's choice, as in the controller: scaling up wakes
a sleeping replica (ready after `wake_s`) before starting one (ready after `cold_start_s`);
scaling down takes the newest starting replica, else the least busy ready one as the gateway
counts it, out of the balancer, lets it finish what it holds, then stops it; under
`tier.keep_warm`, a scale-down that empties the pool puts one ready replica to sleep instead
(it keeps its GPU, as the process does). TTFT samples (from arrival, as the client sees it)
feed the signal window when the pool scales on ttft_p95 (no other metric reads it).

Crashes: a crashed replica is gone at once (the gateway fails its requests over, see
gateway.py); the controller reaps it at its next tick and restarts it after the real Backoff's
delay, the restart counting toward the pool's size meanwhile (a scale-down cancels it first),
as control/lifecycle does. Spot interruptions: on the notice the replica drains (out of the
balancer, finishing what it can) and a replacement starts cold at once; when the notice runs
out whatever it still holds is lost as in a crash, and nothing restarts it. A replica put to
sleep loses its prefix cache, as the engine's sleep frees the KV memory.
"""

from collections.abc import Callable
from dataclasses import dataclass

from inferplane.config.schema import PoolSpec
from inferplane.control.actuators.base import Backoff, BackoffConfig
from inferplane.control.autoscaler import Autoscaler, ScaleDecision
from inferplane.control.resize import Candidate, ScaleDown, ScaleUp, scale_down, scale_up
from inferplane.control.signals import Signals, SignalWindow, pool_signals
from inferplane.sim.events import EventLoop
from inferplane.sim.gateway import SimGateway
from inferplane.sim.replica import SimReplica

ReplicaFactory = Callable[[str], SimReplica]
_PHASES = ("starting", "ready", "draining", "sleeping")


@dataclass(frozen=True)
class ScaleEvent:
    """A decision that changed the pool's size."""

    at_s: float
    current: int
    desired: int
    cause: str
    reason: str


@dataclass(frozen=True)
class FleetSample:
    """The pool's replicas by phase, from `at_s` until the next sample."""

    at_s: float
    starting: int
    ready: int
    draining: int
    sleeping: int = 0

    @property
    def total(self) -> int:
        """Replicas holding a GPU: every phase (a sleeping process keeps its device)."""
        return self.starting + self.ready + self.draining + self.sleeping


@dataclass(frozen=True)
class QueueSample:
    """What the controller saw at a tick: requests waiting (held ones included), in flight."""

    at_s: float
    waiting: int
    in_flight: int


class SimScaler:
    """Runs one pool's replicas through their phases on the autoscaler's decisions."""

    def __init__(  # noqa: PLR0917 (each is a seam)
        self,
        spec: PoolSpec,
        gateway: SimGateway,
        loop: EventLoop,
        make_replica: ReplicaFactory,
        cold_start_s: float,
        epoch_offset: float = 0.0,
        *,
        wake_s: float,
        backoff: BackoffConfig | None = None,
    ) -> None:
        self.spec, self.gateway, self.loop = spec, gateway, loop
        self.make_replica = make_replica
        self.cold_start_s = cold_start_s
        self.wake_s = wake_s
        self.epoch_offset = epoch_offset
        self.autoscaler = Autoscaler(spec.autoscale, spec.replicas, initial=0)
        self.window = SignalWindow()
        self.watch_ttft = spec.autoscale.metric == "ttft_p95"
        self.backoff = Backoff(backoff or BackoffConfig())
        self.replicas: list[SimReplica] = []  # every replica ever started, in start order
        self._by_rid: dict[str, SimReplica] = {}  # by id
        self.events: list[ScaleEvent] = []
        self.timeline: list[FleetSample] = []
        self.queue: list[QueueSample] = []  # the controller's view each tick, when it changed
        self.crashed: list[SimReplica] = []  # gone, not reaped by the controller yet
        self.restarts_due: list[float] = []
        self.restarts = 0
        self.reclaims = 0
        self.on_start: Callable[[SimReplica], None] | None = None  # fault injection's hook

    # -- phases -------------------------------------------------------------------------------

    def live(self, *phases: str) -> list[SimReplica]:
        return [r for r in self.replicas if r.phase in phases]

    @property
    def active(self) -> int:
        """What the autoscaler counts as the current size: starting, ready, or due back."""
        return len(self.live("starting", "ready")) + len(self.restarts_due)

    def start(self, ready_now: bool = False) -> SimReplica:
        sim = self.make_replica(f"r{len(self.replicas)}")
        self.replicas.append(sim)
        self._by_rid[sim.id] = sim
        if self.on_start is not None:
            self.on_start(sim)
        if ready_now:
            self._ready(sim)
        else:
            self.loop.after(self.cold_start_s, lambda: self._ready(sim))
            self._sample()
        return sim

    def _ready(self, sim: SimReplica) -> None:
        if sim.phase != "starting":
            return  # stopped while it was still coming up
        sim.phase, sim.ready_s = "ready", self.loop.clock.now
        self._publish()

    def candidates(self) -> list[Candidate]:
        """The live replicas as the controller's resize sees them: busy as the gateway counts."""
        return [
            Candidate(r.id, r.phase, self._busy(r)) for r in self.replicas if r.phase != "stopped"
        ]

    def _busy(self, sim: SimReplica) -> int:
        record = self.gateway.registry.get(self.gateway.pool, sim.id)
        return 0 if record is None else record.in_flight + record.waiting + record.running

    def grow(self, plan: ScaleUp) -> None:
        for rid in plan.wake:
            self._wake(self._by_id(rid))
        for _ in range(plan.start):
            self.start()

    def shrink(self, plan: ScaleDown) -> None:
        del self.restarts_due[len(self.restarts_due) - plan.cancel_restarts :]
        for rid in plan.drain:
            self._drain(self._by_id(rid))
        if plan.sleep is not None:
            sleeper = self._by_id(plan.sleep)
            sleeper.phase = "sleeping"
            sleeper.reset_prefix_cache()
            self._publish()

    def _by_id(self, rid: str) -> SimReplica:
        return self._by_rid[rid]

    def _wake(self, sim: SimReplica) -> None:
        sim.phase = "starting"
        self.loop.after(self.wake_s, lambda: self._ready(sim))
        self._sample()

    def _drain(self, sim: SimReplica) -> None:
        sim.phase = "draining"
        self._publish()
        if sim.in_flight == 0:
            self._stop(sim)

    def replica_empty(self, sim: SimReplica) -> None:
        if sim.phase == "draining":
            self._stop(sim)

    def _stop(self, sim: SimReplica) -> None:
        sim.phase, sim.stopped_s = "stopped", self.loop.clock.now
        self._sample()

    # -- faults -------------------------------------------------------------------------------

    def crash(self, sim: SimReplica) -> None:
        """The replica's process died: its requests fail over; the controller restarts it."""
        if sim.phase == "stopped":
            return
        self._lose(sim, "the replica crashed")
        self.crashed.append(sim)

    def spot_notice(self, sim: SimReplica, notice_s: float) -> None:
        """The cloud will take the replica in `notice_s`: drain it, start its replacement."""
        if sim.phase == "stopped":
            return
        if sim.phase in ("starting", "ready"):
            self.start()
        if sim.phase != "draining":
            self._drain(sim)
        self.loop.after(notice_s, lambda: self._reclaim(sim))

    def _reclaim(self, sim: SimReplica) -> None:
        if sim.phase != "stopped":
            self._lose(sim, "the spot instance was reclaimed")
        self.reclaims += 1

    def _lose(self, sim: SimReplica, why: str) -> None:
        lost = sim.kill()
        was_routable = sim.phase == "ready"
        sim.phase, sim.stopped_s = "stopped", self.loop.clock.now
        if was_routable:
            self._publish()
        else:
            self._sample()
        self.gateway.lost(sim, lost, why)

    def _reap(self) -> None:
        """The controller's reap and restart_due: crashed replicas come back after a backoff."""
        now = self.loop.clock.now
        for sim in self.crashed:
            self.restarts_due.append(now + self.backoff.next_delay(now - sim.started_s))
            self.restarts += 1
        self.crashed.clear()
        due = [at for at in self.restarts_due if at <= now]
        self.restarts_due = [at for at in self.restarts_due if at > now]
        for _ in due:
            self.start()

    def _publish(self) -> None:
        self.gateway.publish(self.live("ready"))
        self._sample()

    def _sample(self) -> None:
        now = self.loop.clock.now
        sample = FleetSample(now, *(len(self.live(p)) for p in _PHASES))
        if self.timeline and self.timeline[-1].at_s == now:
            self.timeline[-1] = sample
        elif not self.timeline or _counts(self.timeline[-1]) != _counts(sample):
            self.timeline.append(sample)

    # -- decisions ----------------------------------------------------------------------------

    def signals(self) -> Signals:
        arrivals, self.gateway.arrivals = self.gateway.arrivals, 0
        ttft = self.window.ttft_p95(self.loop.clock.now) if self.watch_ttft else None
        return pool_signals(self.gateway.registry.replicas(self.gateway.pool), arrivals=arrivals,
                            held=len(self.gateway.held), ttft_p95_s=ttft)  # fmt: skip

    def tick(self) -> ScaleDecision:
        self._reap()
        now = self.loop.clock.now
        signals = self.signals()
        self._note_queue(QueueSample(now, signals.waiting, signals.in_flight))
        decision = self.autoscaler.decide(now + self.epoch_offset, signals, self.active)
        if decision.direction != "none":
            self.events.append(ScaleEvent(now, decision.current, decision.desired,
                                          decision.cause, decision.reason))  # fmt: skip
        change = decision.desired - self.active
        if change > 0:
            self.grow(scale_up(self.candidates(), change))
        elif change < 0:
            keep_warm = self.spec.tier.keep_warm
            self.shrink(scale_down(self.candidates(), -change, keep_warm=keep_warm,
                                   restarts_due=len(self.restarts_due)))  # fmt: skip
        return decision

    def _note_queue(self, sample: QueueSample) -> None:
        last = self.queue[-1] if self.queue else None
        if last is None or (last.waiting, last.in_flight) != (sample.waiting, sample.in_flight):
            self.queue.append(sample)

    def observe_ttft(self, ttft_s: float) -> None:
        if self.watch_ttft:
            self.window.observe_ttft(self.loop.clock.now, ttft_s)


def _counts(sample: FleetSample) -> tuple[int, int, int, int]:
    return sample.starting, sample.ready, sample.draining, sample.sleeping
