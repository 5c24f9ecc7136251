"""Larger traces from real ones (sim/synthetic.py)."""

from collections import Counter
from pathlib import Path

import pytest

from inferplane.sim.load import load_trace
from inferplane.sim.synthetic import head, repeat

DATA = Path(__file__).parent / "data"


def test_copies_keep_lengths_shift_in_time_and_merge_in_order() -> None:
    azure = load_trace(DATA / "azure_conv_1000.csv", limit=200)
    moon = load_trace(DATA / "mooncake_300.jsonl", limit=100)
    big = repeat([azure, moon], 3, speedup=2.0, seed=1)
    assert len(big) == 3 * 300 and big.block_tokens == 512
    arrivals = [r.arrival_s for r in big.requests]
    assert arrivals == sorted(arrivals)
    assert max(arrivals) <= max(azure.span_s, moon.span_s) / 2
    lengths = Counter((r.prompt_tokens, r.output_tokens) for r in big.requests)
    original = Counter((r.prompt_tokens, r.output_tokens) for r in azure.requests + moon.requests)
    assert lengths == Counter({key: 3 * count for key, count in original.items()})
    # every copy of the Mooncake slice has ids of its own
    openings = Counter(r.hash_ids[0] for r in big.requests if r.hash_ids)
    assert len(openings) == 3 * len({r.hash_ids[0] for r in moon.requests})
    assert repeat([azure, moon], 3, speedup=2.0, seed=1) == big
    assert len(head(big, 10)) == 10


def test_bad_repeats_are_refused() -> None:
    azure = load_trace(DATA / "azure_conv_1000.csv", limit=20)
    with pytest.raises(ValueError, match="copies >= 1"):
        repeat([azure], 0)


def test_a_short_shift_keeps_the_traces_rise_and_fall() -> None:
    azure = load_trace(DATA / "azure_conv_1000.csv")
    dense = repeat([azure], 4, max_shift_s=10.0, seed=2)
    first_half = sum(1 for r in azure.requests if r.arrival_s < azure.span_s / 2)
    dense_half = sum(1 for r in dense.requests if r.arrival_s < azure.span_s / 2)
    assert abs(dense_half - 4 * first_half) < 4 * 20  # the same shape, four times the traffic
