import pytest

from inferplane.config.schema import Autoscale, ReplicaBounds
from inferplane.control.autoscaler import Autoscaler
from inferplane.control.signals import (
    ReplicaLoad,
    Signals,
    SignalWindow,
    percentile,
    pool_signals,
    summarize,
)
from inferplane.gateway.routing.registry import ReplicaRegistry


def test_idle_needs_no_requests_and_a_quiet_gpu() -> None:
    assert Signals().is_idle
    assert not Signals(waiting=1).is_idle
    assert not Signals(requests_since_last=1).is_idle
    assert Signals(gpu_util=4.9).is_idle
    assert not Signals(gpu_util=5.0).is_idle


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.95) == 95.0
    assert percentile([3.0], 0.95) == 3.0


def test_summarize_sums_replicas_and_counts_arrivals() -> None:
    replicas = [
        ReplicaLoad(waiting=2, in_flight=3, kv_usage=0.5, gpu_util=40.0),
        ReplicaLoad(waiting=1, in_flight=1, kv_usage=0.1, gpu_util=60.0),
        ReplicaLoad(ready=False, waiting=0, in_flight=0, kv_usage=0.9),
    ]
    signals = summarize(replicas, arrivals=3, ttft_p95_s=0.2)
    assert (signals.waiting, signals.in_flight, signals.replicas_ready) == (3, 4, 2)
    assert signals.kv_usage == pytest.approx(0.3)
    assert (signals.requests_since_last, signals.gpu_util) == (3, 60.0)
    assert signals.ttft_p95_s == 0.2
    assert summarize([]).gpu_util is None and summarize([]).kv_usage == 0.0


def test_pool_signals_read_the_gateways_records_and_count_held_requests_as_waiting() -> None:
    registry = ReplicaRegistry({"chat": "m"})
    registry.set_replicas("chat", ["http://a", "http://b"])
    a, b = registry.replicas("chat")
    a.waiting, a.in_flight, a.kv_usage = 2, 3, 0.4
    b.in_flight, b.state = 1, "failed"  # ejected by the gateway: not ready, its load counts
    signals = pool_signals(registry.replicas("chat"), arrivals=5, held=4, ttft_p95_s=None)
    assert (signals.waiting, signals.in_flight, signals.replicas_ready) == (2 + 4, 4, 1)
    assert (signals.kv_usage, signals.requests_since_last) == (0.4, 5)
    assert signals.gpu_util is None and signals.ttft_p95_s is None
    at_zero = pool_signals([], arrivals=0, held=2, ttft_p95_s=None)
    assert (at_zero.waiting, at_zero.replicas_ready, at_zero.has_demand) == (2, 0, True)


def test_requests_the_gateway_queued_or_refused_are_demand_that_scales_up() -> None:
    registry = ReplicaRegistry({"chat": "m"})
    registry.set_replicas("chat", ["http://a", "http://b"])
    for replica in registry.replicas("chat"):
        replica.in_flight = 2  # every slot held, nothing waiting at the replicas themselves
    served = pool_signals(registry.replicas("chat"), arrivals=40, held=0, ttft_p95_s=None)
    unserved = pool_signals(
        registry.replicas("chat"), arrivals=40, held=0, ttft_p95_s=None, queued=6, refused=30
    )
    assert (served.waiting, unserved.waiting) == (0, 36)
    bounds = ReplicaBounds(min=2, max=8)
    quiet, pressed = Autoscaler(Autoscale(), bounds), Autoscaler(Autoscale(), bounds)
    for tick in range(30):  # the same load for 150 s: past the up window and step period
        calm = quiet.decide(tick * 5.0, served)
        busy = pressed.decide(tick * 5.0, unserved)
    assert calm.desired == 2  # nothing waits: no more replicas asked for
    assert busy.recommendation == 9  # 36 unserved over 2 replicas against a target of 4
    assert busy.desired > 2


def test_ttft_p95_over_the_horizon() -> None:
    window = SignalWindow(horizon_s=10)
    assert window.ttft_p95(0.0) is None
    window.observe_ttft(0.0, 5.0)
    for i in range(10):
        window.observe_ttft(8.0, 0.1 * (i + 1))
    assert window.ttft_p95(9.0) == 5.0
    assert window.ttft_p95(10.5) == pytest.approx(1.0)  # the 5 s sample has left the window


def test_horizon_must_be_positive() -> None:
    with pytest.raises(ValueError, match="horizon"):
        SignalWindow(0)
