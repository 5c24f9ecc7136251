from pathlib import Path

import pytest

from inferplane.sim.trace import load_azure_trace, parse_timestamp

DATA = Path(__file__).parent / "data"
SAMPLE = Path(__file__).parents[2] / "bench" / "data" / "azure_conv_sample.csv"


def test_arrivals_are_relative_to_the_first_row() -> None:
    trace = load_azure_trace(SAMPLE)
    assert len(trace) == 64
    first, second = trace.requests[:2]
    assert first.arrival_s == 0.0
    assert (first.prompt_tokens, first.output_tokens) == (200, 217)
    # 18:18:07.9547300 -> 18:19:23.2256460
    assert second.arrival_s == pytest.approx(75.270916, abs=1e-6)
    assert trace.start_epoch == pytest.approx(parse_timestamp("2023-11-16 18:18:07.9547300"))


def test_seven_fraction_digits_and_utc() -> None:
    assert parse_timestamp("1970-01-01 00:00:01.0000001") == pytest.approx(1.0000001, abs=1e-9)
    assert parse_timestamp("1970-01-02 00:00:00") == 86400.0


def test_speedup_divides_offsets_and_limit_keeps_first_rows() -> None:
    plain = load_azure_trace(DATA / "azure_conv_1000.csv")
    fast = load_azure_trace(DATA / "azure_conv_1000.csv", speedup=4.0, limit=10)
    assert len(plain) == 1000 and len(fast) == 10
    for slow, quick in zip(plain.requests[:10], fast.requests, strict=True):
        assert quick.arrival_s == pytest.approx(slow.arrival_s / 4)
        assert quick.prompt_tokens == slow.prompt_tokens
    assert plain.span_s == pytest.approx(216.027393, abs=1e-5)


def test_bad_input_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00.1,5,5\nnope,1,1\n")
    with pytest.raises(ValueError, match="line 3"):
        load_azure_trace(bad)
    bad.write_text("TIMESTAMP,Tokens\n2023-11-16 18:00:00,5\n")
    with pytest.raises(ValueError, match="missing column"):
        load_azure_trace(bad)
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:01,5,5\n"
                   "2023-11-16 18:00:00,5,5\n")  # fmt: skip
    with pytest.raises(ValueError, match="sorted"):
        load_azure_trace(bad)
    with pytest.raises(ValueError, match="speedup"):
        load_azure_trace(SAMPLE, speedup=0)
