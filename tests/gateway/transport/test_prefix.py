import time
from typing import Any

import pytest

from inferplane.gateway.transport.prefix import chat_prefix_hashes, prefix_hashes, render_messages

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(80))


def test_only_full_blocks_count_up_to_the_cap() -> None:
    assert prefix_hashes("x" * 63) == ()
    assert len(prefix_hashes("x" * 64)) == 1
    assert len(prefix_hashes("x" * 200, block_chars=64)) == 3
    assert len(prefix_hashes(TEXT, max_blocks=32)) == 32


def test_equal_hash_means_equal_whole_prefix() -> None:
    a = prefix_hashes("A" * 64 + "B" * 64)
    b = prefix_hashes("C" * 64 + "B" * 64)
    assert a[1] != b[1]  # same second block, different opening: different hash
    assert prefix_hashes(TEXT[:640] + "tail one")[:10] == prefix_hashes(TEXT[:640] + "two")[:10]


def test_stable_values_and_unicode() -> None:
    assert prefix_hashes("é" * 64) == prefix_hashes("é" * 64)
    assert len(prefix_hashes("é" * 32)) == 1  # blocks count UTF-8 bytes
    assert prefix_hashes("a" * 64) == (2310301013 << 32 | 344791105,)  # CRC-32, Adler-32


def test_chat_rendering_keeps_role_and_content_only() -> None:
    one = [
        {"role": "system", "content": "be brief", "name": "x"},
        {"role": "user", "content": "hi"},
    ]
    two: list[dict[str, Any]] = [
        {"role": "system", "content": [{"type": "text", "text": "be brief"}]},
        {"role": "user", "content": "hi"},
    ]
    assert render_messages(one) == render_messages(two)
    assert render_messages([{"role": "user", "content": "hi"}]) != render_messages(
        [{"role": "assistant", "content": "hi"}]
    )
    assert render_messages([{"role": "assistant", "content": None}]).endswith("assistant\x1f")


def test_chat_turns_share_the_earlier_turns_prefix() -> None:
    turn = [{"role": "system", "content": TEXT[:1000]}, {"role": "user", "content": "q1"}]
    later = [*turn, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}]
    first = chat_prefix_hashes(turn)
    assert chat_prefix_hashes(later)[: len(first)] == first


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        prefix_hashes("x", block_chars=0)


def test_a_4kb_prompt_hashes_in_tens_of_microseconds() -> None:
    prompt = (TEXT * 2)[:4096]
    runs = 2000
    started = time.perf_counter()
    for _ in range(runs):
        prefix_hashes(prompt)
    per_call = (time.perf_counter() - started) / runs
    assert per_call < 100e-6  # about 6-12 us here; a loose bound for a shared CI machine
