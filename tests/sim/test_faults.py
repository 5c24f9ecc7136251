"""Crashes and spot interruptions (sim/faults.py, with scaling.py and gateway.py)."""

import dataclasses

import pytest

from inferplane.sim.faults import FaultEvent, Faults
from inferplane.sim.report import SimReport
from inferplane.sim.run import SimOptions, simulate
from tests.sim.fleets import fleet
from tests.sim.test_scaling import SLOW, burst

FIXED = dataclasses.replace(SLOW, replicas=2)  # 8 sequences a replica, 50 ms a step, 5 s starts


def _with(*events: FaultEvent, notice_s: float = 3.0) -> SimOptions:
    return dataclasses.replace(FIXED, faults=Faults(events=events, spot_notice_s=notice_s))


def _starts(report: SimReport) -> list[float]:
    """When the pool's size (every phase) went up."""
    sizes = [(s["at_s"], s["starting"] + s["ready"] + s["draining"]) for s in
             report.replica_timeline]  # fmt: skip
    return [at for (at, size), (_, before) in zip(sizes[1:], sizes, strict=False) if size > before]


def test_a_crash_fails_over_what_had_not_started_and_restarts_after_the_backoff() -> None:
    trace = burst(200, 0.05)  # 10 requests a second for 10 s: both replicas stay full
    report = simulate(fleet(), "chat", trace, "H100", options=_with(FaultEvent(5.5, "crash")))
    assert report.restarts == 1 and report.reclaims == 0
    assert report.failed_over > 0  # queued on r0 without a token: sent to r1
    assert report.rejected_by_reason == {"502 stream_broken": report.rejected}
    assert 0 < report.rejected <= 8  # only what r0 was streaming when it died
    assert report.finished + report.rejected == 200
    # reaped at the 6 s tick, due back 1 s later (the first backoff), ready after a 5 s start
    assert _starts(report) == [7.0]
    assert any(s["at_s"] == 12.0 and s["ready"] == 2 for s in report.replica_timeline)


def test_a_spot_notice_drains_and_replaces_then_the_instance_goes() -> None:
    trace = burst(200, 0.05)
    spot = fleet(capacity="spot")
    report = simulate(spot, "chat", trace, "H100", options=_with(FaultEvent(5.5, "spot")))
    assert report.reclaims == 1 and report.restarts == 0
    assert _starts(report) == [5.5]  # the replacement starts with the notice
    assert report.settings["capacity"] == "spot"
    # drained at 5.5: no new work; what it still streams at 8.5 is cut off
    assert report.finished + report.rejected == 200
    assert set(report.rejected_by_reason) <= {"502 stream_broken"}
    assert report.gpu_seconds < 3 * report.duration_s


def test_random_faults_repeat_for_a_seed() -> None:
    trace = burst(200, 0.05)
    random_faults = Faults(crash_mtbf_s=4.0)
    options = dataclasses.replace(FIXED, faults=random_faults, seed=3)
    first = simulate(fleet(), "chat", trace, "H100", options=options)
    second = simulate(fleet(), "chat", trace, "H100", options=options)
    assert first.to_dict() == second.to_dict()
    assert first.restarts >= 2 and first.finished + first.rejected == 200
    calm = simulate(fleet(), "chat", trace, "H100", options=FIXED)
    assert calm.restarts == 0 and calm.rejected == 0


def test_faults_are_checked() -> None:
    with pytest.raises(ValueError, match="crash_mtbf_s must be > 0"):
        Faults(crash_mtbf_s=0)
    with pytest.raises(ValueError, match="fault times"):
        Faults(events=(FaultEvent(-1.0, "crash"),))
