import pytest

from inferplane.config.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("300ms", 0.3),
        (12, 12.0),
        ("1.5m", 90.0),
        (" 7 s ", 7.0),
        ("45", 45.0),
    ],
)
def test_parses_numbers_and_units(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["soon", "5 minutes", "-3s", -1, True, None, "1w"])
def test_rejects_with_advice(bad: object) -> None:
    with pytest.raises(ValueError, match="like 300ms, 30s"):
        parse_duration(bad)


@pytest.mark.parametrize("seconds", [0.25, 1.0, 90.0, 300.0, 7200.0, 86400.0])
def test_format_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)
