import pytest

from inferplane.sim.records import RequestRecord
from inferplane.sim.report import Distribution, RunFacts, build_report
from inferplane.sim.scaling import FleetSample


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    found = Distribution.of(values)
    assert (found.p50, found.p95, found.p99, found.max) == (50.0, 95.0, 99.0, 100.0)
    assert found.mean == 50.5 and Distribution.of([]) == Distribution()


def _record(index: int, arrival: float, first: float, finish: float, out: int) -> RequestRecord:
    record = RequestRecord(index, arrival, 10, out)
    record.first_token_s, record.finish_s, record.output_tokens = first, finish, out
    record.outcome = "finished"
    return record


def test_a_report_from_hand_made_records() -> None:
    done = [_record(0, 0.0, 0.5, 2.5, 5), _record(1, 1.0, 2.0, 4.0, 3)]
    refused = RequestRecord(2, 1.5, 10, 1)
    refused.reject("503 no_healthy_replica: none ready within the 60 s hold")
    timeline = [FleetSample(0.0, 0, 1, 0), FleetSample(2.0, 1, 1, 0), FleetSample(3.0, 0, 1, 0)]
    facts = RunFacts("chat", "round_robin", "H100-SXM", "m", 0, [*done, refused], [], timeline,
                     [], 4.0, 3.6, {})  # fmt: skip
    report = build_report(facts)
    assert (report.finished, report.rejected) == (2, 1)
    assert report.rejected_by_reason == {"503 no_healthy_replica": 1}
    assert report.ttft_s.p50 == 0.5 and report.ttft_s.max == 1.0
    assert report.latency_s.max == 3.0
    assert report.tpot_s.p50 == pytest.approx(0.5)  # (2.5 - 0.5) / 4 and (4 - 2) / 2 = 1.0
    assert report.output_tokens == 8 and report.output_tokens_per_s == 2.0
    assert report.replicas_max == 2 and report.replicas_mean == pytest.approx(1.25)
    assert report.gpu_seconds == 0.0 and report.cost_usd == 0.0


def test_ttft_per_five_minute_window_of_arrivals() -> None:
    records = [_record(i, 100.0 * i, 100.0 * i + 0.1 * (i + 1), 100.0 * i + 5, 3) for i in range(7)]
    facts = RunFacts("chat", "round_robin", "H100-SXM", "m", 0, records, [], [], [], 700.0, 1.0, {})
    windows = build_report(facts).ttft_windows
    assert [(w["from_s"], w["requests"]) for w in windows] == [(0.0, 3), (300.0, 3), (600.0, 1)]
    assert [w["p95"] for w in windows] == [0.3, 0.6, 0.7]
