from inferplane.config.schema import Autoscale, ReplicaBounds, ScheduledMinimum
from inferplane.control.autoscaler import Autoscaler, ReplicaCap, ScaleDecision
from inferplane.control.signals import Signals

TICK = 5.0


def busy(waiting: int, ready: int = 1) -> Signals:
    return Signals(waiting=waiting, in_flight=ready, replicas_ready=ready, requests_since_last=3)


def run(scaler: Autoscaler, start: float, end: float, signals: Signals) -> list[ScaleDecision]:
    decisions = []
    now = start
    while now < end:
        decisions.append(scaler.decide(now, signals))
        now += TICK
    return decisions


def first_change(decisions: list[ScaleDecision], start: float) -> float | None:
    for index, decision in enumerate(decisions):
        if decision.direction != "none":
            return start + index * TICK
    return None


def test_a_burst_scales_up_within_its_window() -> None:
    scaler = Autoscaler(Autoscale(), ReplicaBounds(min=1, max=8))
    run(scaler, 0, 100, busy(0))
    decisions = run(scaler, 100, 200, busy(20))
    changed_at = first_change(decisions, 100)
    assert changed_at is not None and changed_at - 100 <= 30
    assert decisions[int(30 / TICK)].desired == 3  # +2 per 60 s
    assert "up window" in decisions[0].reason and decisions[0].cause == "stabilizing"


def test_a_spike_shorter_than_the_window_scales_nothing() -> None:
    scaler = Autoscaler(Autoscale(), ReplicaBounds(min=1, max=8))
    run(scaler, 0, 100, busy(0))
    run(scaler, 100, 120, busy(40))
    assert all(d.desired == 1 for d in run(scaler, 120, 400, busy(0)))


def test_step_limits_per_period() -> None:
    scaler = Autoscaler(Autoscale(up_window=0), ReplicaBounds(min=1, max=8))
    decisions = run(scaler, 0, 125, busy(40))
    assert [d.desired for d in decisions[:2]] == [3, 3]
    assert "step limit +2/60 s" in decisions[0].reason
    assert decisions[int(60 / TICK)].desired == 5
    assert decisions[int(120 / TICK)].desired == 7
    assert max(d.desired for d in run(scaler, 125, 400, busy(40))) == 8


def test_scale_down_waits_its_window_then_steps_down() -> None:
    scaler = Autoscaler(Autoscale(), ReplicaBounds(min=1, max=8), initial=4)
    decisions = run(scaler, 0, 600, busy(0, ready=4))
    times = [index * TICK for index, d in enumerate(decisions) if d.direction == "down"]
    assert times[0] >= 300
    assert times[1] - times[0] == 120  # one replica per 120 s
    assert [d.desired for d in decisions][-1] == 1  # 3 at 300 s, 2 at 420 s, 1 at 540 s


def test_scale_down_holds_the_highest_recommendation_of_the_window() -> None:
    scaler = Autoscaler(Autoscale(down_window=60, down_step=8), ReplicaBounds(max=8), initial=6)
    scaler.decide(0, busy(24, ready=6))
    assert scaler.decide(30, busy(8, ready=6)).desired == 6
    decision = scaler.decide(65, busy(8, ready=6))
    assert decision.desired == 2 and decision.direction == "down"


def test_idleness_scales_to_zero() -> None:
    spec = Autoscale(idle_to_zero=120)
    scaler = Autoscaler(spec, ReplicaBounds(min=0, max=4), initial=1)
    run(scaler, 0, 50, busy(2))
    quiet = run(scaler, 50, 400, Signals(replicas_ready=1, gpu_util=1.0))
    zero_at = first_change(quiet, 50)
    assert zero_at == 170  # idle since 50, for 120 s
    assert quiet[int(120 / TICK)].cause == "idle_to_zero"
    assert quiet[-1].desired == 0


def test_a_busy_gpu_is_not_idle() -> None:
    scaler = Autoscaler(Autoscale(idle_to_zero=60), ReplicaBounds(min=0, max=4), initial=1)
    assert all(d.desired == 1 for d in run(scaler, 0, 600, Signals(replicas_ready=1, gpu_util=30)))


def test_idle_period_defaults_to_the_down_window() -> None:
    scaler = Autoscaler(Autoscale(down_window=100), ReplicaBounds(min=0, max=2), initial=1)
    decisions = run(scaler, 0, 200, Signals(replicas_ready=1))
    assert first_change(decisions, 0) == 100


def test_min_wins_over_idleness() -> None:
    scaler = Autoscaler(Autoscale(idle_to_zero=10), ReplicaBounds(min=1, max=2))
    assert all(d.desired == 1 for d in run(scaler, 0, 300, Signals(replicas_ready=1)))


def test_scale_from_zero_at_once_and_stay_at_zero_without_demand() -> None:
    scaler = Autoscaler(Autoscale(idle_to_zero=60), ReplicaBounds(min=0, max=4))
    assert scaler.current == 0
    assert scaler.decide(0, Signals()).desired == 0
    decision = scaler.decide(5, Signals(waiting=1))
    assert (decision.desired, decision.cause) == (1, "from_zero")
    big = Autoscaler(Autoscale(), ReplicaBounds(min=0, max=8)).decide(0, Signals(waiting=40))
    assert big.desired == 2  # the step limit still holds


def test_scheduled_minimum_lifts_at_once_and_keeps_the_floor() -> None:
    schedule = (ScheduledMinimum(start="08:00", end="09:00", min=3),)
    spec = Autoscale(idle_to_zero=60, schedule=schedule)
    scaler = Autoscaler(spec, ReplicaBounds(min=0, max=2), initial=1)
    eight = 8 * 3600.0
    before = scaler.decide(eight - 5, Signals(replicas_ready=1))
    assert before.desired == 1
    inside = scaler.decide(eight + 5, Signals(replicas_ready=1))
    assert (inside.desired, inside.cause) == (2, "min")  # capped by max 2
    assert all(d.desired == 2 for d in run(scaler, eight + 10, eight + 3000, Signals()))


def test_max_caps_the_desired_count() -> None:
    spec = Autoscale(up_window=0, up_step=100)
    decision = Autoscaler(spec, ReplicaBounds(min=1, max=3)).decide(0, busy(400))
    assert (decision.desired, decision.cause) == (3, "max")


def test_ratio_metrics_with_tolerance() -> None:
    kv = Autoscaler(Autoscale(metric="kv_usage", target=0.8), ReplicaBounds(max=8), initial=2)
    assert kv.recommend(Signals(replicas_ready=2, kv_usage=0.85))[0] == 2
    assert kv.recommend(Signals(replicas_ready=2, kv_usage=1.0))[0] == 3
    assert kv.recommend(Signals(replicas_ready=2, kv_usage=0.2))[0] == 1
    ttft = Autoscaler(Autoscale(metric="ttft_p95", target=1.0), ReplicaBounds(max=8), initial=2)
    assert ttft.recommend(Signals(replicas_ready=2, ttft_p95_s=2.0))[0] == 4
    wanted, reason = ttft.recommend(Signals(replicas_ready=2))
    assert wanted == 2 and "unknown" in reason


def test_in_flight_metric_and_current_override() -> None:
    spec = Autoscale(metric="in_flight_per_replica", target=8, up_window=0)
    scaler = Autoscaler(spec, ReplicaBounds(min=1, max=8))
    decision = scaler.decide(0, Signals(in_flight=24, replicas_ready=2), current=2)
    assert (decision.current, decision.desired) == (2, 3)
    assert "in_flight_per_replica 12.00 vs target 8 -> 3" in decision.reason


def test_decide_now_reads_the_clock() -> None:
    times = iter([0.0, 10.0])
    scaler = Autoscaler(Autoscale(), ReplicaBounds(), clock=lambda: next(times))
    assert scaler.decide_now(Signals()).desired == 1
    assert scaler.decide_now(Signals()).direction == "none"


def test_a_cap_stops_the_scale_up_and_says_why() -> None:
    scaler = Autoscaler(Autoscale(up_window=0), ReplicaBounds(min=1, max=8), initial=1)
    cap = ReplicaCap(2, "1 of 2 cores free, 1 per replica")
    decision = scaler.decide(0, busy(40), cap=cap)
    assert (decision.desired, decision.cause) == (2, "cap")
    assert "cap 2 (1 of 2 cores free, 1 per replica) -> 2" in decision.reason
    # At the cap it stays: a cap never takes a pool down, and a decision under it is free.
    assert scaler.decide(1, busy(40, ready=2), cap=ReplicaCap(1, "0 free")).desired == 2
    assert scaler.decide(2, busy(0, ready=2), cap=ReplicaCap(0, "0 free")).cause != "cap"


def test_a_cap_leaves_the_floor_and_a_request_at_zero_their_replica() -> None:
    floor = Autoscaler(Autoscale(up_window=0), ReplicaBounds(min=3, max=4), initial=1)
    assert floor.decide(0, busy(1), cap=ReplicaCap(1, "0 free")).desired == 3
    zero = Autoscaler(Autoscale(), ReplicaBounds(min=0, max=4), initial=0)
    waiting = Signals(waiting=1, requests_since_last=1)
    decision = zero.decide(0, waiting, cap=ReplicaCap(0, "0 of 2 cores free"))
    assert decision.desired == 1 and decision.cause == "cap"
