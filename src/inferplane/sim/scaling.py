"""The controller's part: size the pool with the real autoscaler, start and stop replicas.

Every controller interval the pool's Signals are built as control/controller.py builds them
(each routable replica's waiting, in-flight and KV usage from the gateway's registry; arrivals
since the last tick; requests held for a replica counted as waiting) and the real Autoscaler
decides. A request held at zero replicas ticks at once, as the controller's `hold` wakes it.

Scaling up starts a replica that becomes ready after `cold_start_s`. Scaling down picks the
controller's victim (a starting replica first, else the least busy ready one), takes it out of
the balancer, lets it finish what it holds, then stops it. TTFT samples (from arrival, as the
client sees it) feed the signal window, so the ttft_p95 metric works.
"""

from collections.abc import Callable
from dataclasses import dataclass

from inferplane.config.schema import PoolSpec
from inferplane.control.autoscaler import Autoscaler, ScaleDecision
from inferplane.control.signals import Signals, SignalWindow, pool_signals
from inferplane.sim.events import EventLoop
from inferplane.sim.gateway import SimGateway
from inferplane.sim.replica import SimReplica

ReplicaFactory = Callable[[str], SimReplica]


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

    @property
    def total(self) -> int:
        return self.starting + self.ready + self.draining


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
    ) -> None:
        self.spec, self.gateway, self.loop = spec, gateway, loop
        self.make_replica = make_replica
        self.cold_start_s = cold_start_s
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

    def stop_one(self) -> None:
        starting = self.live("starting")
        if starting:
            self._stop(starting[-1])
            return
        ready = self.live("ready")
        if not ready:
            return
        victim = min(ready, key=_busyness)
        victim.phase = "draining"
        self._publish()
        if victim.in_flight == 0:
            self._stop(victim)

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
        sample = FleetSample(now, *(len(self.live(p)) for p in ("starting", "ready", "draining")))
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
        for _ in range(max(decision.desired - self.active, 0)):
            self.start()
        for _ in range(max(self.active - decision.desired, 0)):
            self.stop_one()
        return decision

    def observe_ttft(self, ttft_s: float) -> None:
        self.window.observe_ttft(self.loop.clock.now, ttft_s)


def _busyness(sim: SimReplica) -> tuple[int, str]:
    return sim.in_flight, sim.id


def _counts(sample: FleetSample) -> tuple[int, int, int]:
    return sample.starting, sample.ready, sample.draining
