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
feed the signal window, so the ttft_p95 metric works.
"""

from collections.abc import Callable
from dataclasses import dataclass

from inferplane.config.schema import PoolSpec
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
    ) -> None:
        self.spec, self.gateway, self.loop = spec, gateway, loop
        self.make_replica = make_replica
        self.cold_start_s = cold_start_s
        self.wake_s = wake_s
        self.epoch_offset = epoch_offset
        self.autoscaler = Autoscaler(spec.autoscale, spec.replicas, initial=0)
        self.window = SignalWindow()
        self.replicas: list[SimReplica] = []  # every replica ever started, in start order
        self.events: list[ScaleEvent] = []
        self.timeline: list[FleetSample] = []

    # -- phases -------------------------------------------------------------------------------

    def live(self, *phases: str) -> list[SimReplica]:
        return [r for r in self.replicas if r.phase in phases]

    @property
    def active(self) -> int:
        """What the autoscaler counts as the current size: starting or ready."""
        return len(self.live("starting", "ready"))

    def start(self, ready_now: bool = False) -> SimReplica:
        sim = self.make_replica(f"r{len(self.replicas)}")
        self.replicas.append(sim)
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
        for rid in plan.drain:
            self._drain(self._by_id(rid))
        if plan.sleep is not None:
            self._by_id(plan.sleep).phase = "sleeping"
            self._publish()

    def _by_id(self, rid: str) -> SimReplica:
        return next(r for r in self.replicas if r.id == rid)

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
        return pool_signals(self.gateway.registry.replicas(self.gateway.pool), arrivals=arrivals,
                            held=len(self.gateway.held),
                            ttft_p95_s=self.window.ttft_p95(self.loop.clock.now))  # fmt: skip

    def tick(self) -> ScaleDecision:
        now = self.loop.clock.now
        decision = self.autoscaler.decide(now + self.epoch_offset, self.signals(), self.active)
        if decision.direction != "none":
            self.events.append(ScaleEvent(now, decision.current, decision.desired,
                                          decision.cause, decision.reason))  # fmt: skip
        change = decision.desired - self.active
        if change > 0:
            self.grow(scale_up(self.candidates(), change))
        elif change < 0:
            keep_warm = self.spec.tier.keep_warm
            self.shrink(scale_down(self.candidates(), -change, keep_warm=keep_warm))
        return decision

    def observe_ttft(self, ttft_s: float) -> None:
        self.window.observe_ttft(self.loop.clock.now, ttft_s)


def _counts(sample: FleetSample) -> tuple[int, int, int, int]:
    return sample.starting, sample.ready, sample.draining, sample.sleeping
