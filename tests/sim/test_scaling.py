import dataclasses
import itertools

from inferplane.sim.latency import LinearStepTime
from inferplane.sim.report import SimReport
from inferplane.sim.run import SimOptions, simulate
from inferplane.sim.trace import Trace, TraceRequest
from tests.sim.fleets import fleet

# a slow replica (8 sequences at 50 ms a step) so a burst leaves requests waiting
SLOW = SimOptions(step_time=LinearStepTime(base_s=0.05), max_num_seqs=8, kv_blocks=4096,
                  cold_start_s=5.0)  # fmt: skip


def burst(count: int, every_s: float, start_s: float = 0.0, out: int = 100) -> Trace:
    return Trace(tuple(TraceRequest(start_s + i * every_s, 200, out) for i in range(count)))


def _sizes(report: SimReport) -> list[int]:
    return [int(s["starting"] + s["ready"] + s["draining"]) for s in report.replica_timeline]


def _sleeping(report: SimReport) -> list[int]:
    return [int(s["sleeping"]) for s in report.replica_timeline]


def test_a_burst_scales_up_after_the_up_window_and_back_down_after_the_down_window() -> None:
    report = simulate(fleet("{min: 1, max: 4}"), "chat", burst(600, 0.1), "H100", options=SLOW)
    ups = [e for e in report.scale_events if e["to"] > e["from"]]
    downs = [e for e in report.scale_events if e["to"] < e["from"]]
    # the waiting queue passes the target within the first seconds; the 30 s up window holds
    assert 30.0 <= ups[0]["at_s"] <= 33.0 and "up window 30 s" in ups[0]["reason"]
    assert (ups[0]["from"], ups[0]["to"]) == (1, 3)  # up_step 2 per minute
    assert report.replicas_max == 4
    last_up = ups[-1]["at_s"]
    assert downs and downs[0]["at_s"] >= last_up + 300 - 1  # the 300 s down window
    assert [(e["from"], e["to"]) for e in downs] == [(4, 3), (3, 2), (2, 1)]
    assert all(b["at_s"] - a["at_s"] >= 120 for a, b in itertools.pairwise(downs))
    assert _sizes(report)[-1] == 1 and report.finished == 600 and report.rejected == 0
    # the controller's view at its ticks: the queue builds up, then drains
    waiting = [q["waiting"] for q in report.queue_timeline]
    assert max(waiting) > 100 and waiting[-1] == 0
    assert [q["at_s"] for q in report.queue_timeline] == sorted(
        q["at_s"] for q in report.queue_timeline
    )


def test_a_spike_shorter_than_the_up_window_scales_nothing() -> None:
    report = simulate(fleet("{min: 1, max: 4}"), "chat", burst(40, 0.1, out=20), "H100",
                      options=SLOW)  # fmt: skip
    assert report.scale_events == [] and report.replicas_max == 1


def test_scale_from_zero_holds_the_first_requests_through_the_cold_start_then_to_zero() -> None:
    autoscale = "{idle_to_zero: 60s}"
    report = simulate(fleet("{min: 0, max: 2}", autoscale), "chat", burst(5, 1.0, start_s=10.0),
                      "H100", options=SLOW)  # fmt: skip
    assert report.held >= 1 and report.finished == 5
    assert report.ttft_s.max >= 5.0  # the first request waited for the cold start
    first = report.scale_events[0]
    assert (first["at_s"], first["from"], first["to"], first["cause"]) == (10.0, 0, 1, "from_zero")
    last = report.scale_events[-1]
    assert (last["to"], last["cause"]) == (0, "idle_to_zero")
    assert last["at_s"] - report.last_finish_s >= 60.0 - 1
    assert _sizes(report)[0] == 1 and _sizes(report)[-1] == 0
    # GPU time: 5 s cold start + the work + the idle minute, not the 10 s before the first request
    assert report.gpu_seconds < report.duration_s - 9


def test_keep_warm_sleeps_at_zero_and_the_next_request_wakes_it_without_a_cold_start() -> None:
    """The controller's scale-down choice: at zero under keep_warm one replica sleeps (it keeps
    its GPU); the next request wakes it in wake_s instead of a cold start."""
    config = fleet("{min: 0, max: 2}", "{idle_to_zero: 60s}", tier="{keep_warm: true}")
    trace = Trace(burst(3, 1.0, start_s=10.0).requests + burst(3, 1.0, start_s=300.0).requests)
    options = dataclasses.replace(SLOW, wake_s=1.0)
    report = simulate(config, "chat", trace, "H100", options=options)
    causes = [(e["at_s"], e["to"], e["cause"]) for e in report.scale_events]
    assert [(to, cause) for _, to, cause in causes] == [
        (1, "from_zero"), (0, "idle_to_zero"), (1, "from_zero"), (0, "idle_to_zero"),
    ]  # fmt: skip
    assert _sleeping(report)[-1] == 1 and _sizes(report)[-1] == 0
    woken = next(s for s in report.replica_timeline if s["at_s"] > causes[2][0] and s["ready"])
    assert woken["at_s"] == causes[2][0] + 1.0  # wake_s, not the 5 s cold start
    assert report.finished == 6 and report.ttft_s.max >= 5.0  # only the first waited 5 s
    assert report.ttft_s.p50 < 5.0
    assert report.gpu_seconds == report.duration_s - 10.0  # one replica, asleep or not


def test_a_fixed_size_never_scales() -> None:
    options = SimOptions(step_time=SLOW.step_time, max_num_seqs=8, kv_blocks=4096, replicas=2)
    report = simulate(fleet("{min: 1, max: 4}"), "chat", burst(600, 0.1), "H100", options=options)
    assert report.scale_events == [] and report.replicas_max == 2
    assert report.gpu_seconds == 2 * report.duration_s


def test_a_sleeping_replica_loses_its_prefix_cache_as_the_engine_frees_it() -> None:
    """Two bursts of one shared 1,024-token prompt opening, with a sleep between them."""
    config = fleet("{min: 0, max: 1}", "{idle_to_zero: 60s}", tier="{keep_warm: true}")
    arrivals = (10.0, 20.0, 21.0, 300.0, 305.0, 306.0)  # each after the one before finished
    trace = Trace(tuple(TraceRequest(at, 1024, 5, (1, 2)) for at in arrivals), block_tokens=512)
    options = dataclasses.replace(SLOW, wake_s=1.0)
    report = simulate(config, "chat", trace, "H100", options=options)
    assert [e["cause"] for e in report.scale_events].count("idle_to_zero") == 2
    cached = 63 * 16  # every full block but the one holding the last prompt token
    # the second and third of each burst hit; the first after the sleep finds nothing
    assert report.prefix_cache_hit_rate == round(4 * cached / (6 * 1024), 6)


def test_the_pool_can_start_at_a_size_the_autoscaler_then_takes_over() -> None:
    options = dataclasses.replace(SLOW, initial_replicas=3)
    report = simulate(fleet("{min: 1, max: 4}"), "chat", burst(20, 0.5, out=5), "H100",
                      options=options)  # fmt: skip
    assert _sizes(report)[0] == 3 and _sizes(report)[-1] == 1  # three at first, then down
    assert report.scale_events[0]["from"] == 3
