from inferplane.ledger.attribution import attribute
from inferplane.ledger.spans import RequestSpan, steps_from_spans


def test_overlap_is_shared_by_token_rate() -> None:
    spans = [RequestSpan("a", 0.0, 4.0, 40), RequestSpan("b", 2.0, 4.0, 20)]
    steps = list(steps_from_spans(spans))
    assert [(s.start, s.end, set(s.tokens)) for s in steps] == [
        (0.0, 2.0, {"a"}),
        (2.0, 4.0, {"a", "b"}),
    ]
    result = attribute(steps, 0.0, 10.0, hourly_usd=3.6)
    assert result.requests["a"].gpu_seconds == 3.0  # 2 s alone + half of the 2 s shared
    assert result.requests["b"].gpu_seconds == 1.0
    assert result.idle.gpu_seconds == 6.0


def test_gaps_and_zero_length_spans() -> None:
    spans = [
        RequestSpan("a", 0.0, 1.0, 5),
        RequestSpan("z", 1.5, 1.5, 0),
        RequestSpan("b", 3.0, 4.0, 0),
    ]
    steps = list(steps_from_spans(spans))
    assert [(s.start, s.end) for s in steps] == [(0.0, 1.0), (3.0, 4.0)]
    result = attribute(steps, 0.0, 4.0, hourly_usd=1.0)
    assert result.idle.gpu_seconds == 2.0
    assert list(steps_from_spans([])) == []
