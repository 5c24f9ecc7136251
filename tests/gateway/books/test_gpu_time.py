import pytest

from inferplane.gateway.books.gpu_time import ReplicaTimeline
from inferplane.ledger.attribution import attribute
from inferplane.ledger.spans import RequestSpan, steps_from_spans

SPANS = [
    RequestSpan("a", 0.0, 4.0, 40),
    RequestSpan("b", 1.0, 2.0, 5),
    RequestSpan("c", 1.5, 6.0, 90),
    RequestSpan("d", 8.0, 9.0, 3),
]


def test_shares_match_the_ledgers_step_attribution() -> None:
    timeline = ReplicaTimeline(3.6)  # $3.60 an hour: one micro-dollar per GPU-millisecond
    for span in SPANS:
        timeline.finished(span)
    shares = {s.span.request_id: s for s in timeline.sweep(10.0)}
    expected = attribute(steps_from_spans(SPANS), 0.0, 10.0, 3.6)
    for request_id, charge in expected.requests.items():
        assert shares[request_id].gpu_seconds == pytest.approx(charge.gpu_seconds, abs=1e-5)
        assert abs(shares[request_id].cost_micro_usd - charge.cost_micro_usd) <= 1
    assert sum(s.gpu_seconds for s in shares.values()) == pytest.approx(7.0, abs=1e-5)


def test_nothing_past_the_cut_is_charged_and_later_sweeps_finish_it() -> None:
    timeline = ReplicaTimeline(3.6)
    for span in SPANS:
        timeline.finished(span)
    first = {s.span.request_id for s in timeline.sweep(3.0)}
    assert first == {"b"}
    rest = {s.span.request_id for s in timeline.sweep(10.0)}
    assert rest == {"a", "c", "d"}
    assert timeline.pending() == 0


def test_charges_add_up_to_the_priced_busy_time() -> None:
    timeline = ReplicaTimeline(1.0, gpus=2)
    spans = [RequestSpan(str(i), i * 0.1, i * 0.1 + 0.33, 7) for i in range(50)]
    for span in spans:
        timeline.finished(span)
    shares = timeline.sweep(100.0)
    busy_us = round((49 * 0.1 + 0.33) * 1e6) * 2
    assert sum(s.cost_micro_usd for s in shares) == busy_us * 1 // 3600
    assert sum(s.gpu_seconds for s in shares) == pytest.approx(busy_us / 1e6, abs=1e-4)


def test_a_bad_price_is_refused() -> None:
    with pytest.raises(ValueError, match="gpus"):
        ReplicaTimeline(1.0, gpus=0)
