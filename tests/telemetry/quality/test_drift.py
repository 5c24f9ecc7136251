# ruff: noqa: RUF001 (mixed scripts are the point)
"""dominant_script: the short ways (ASCII, each distinct character named once) give what naming
every character gives, ties included."""

import random
import unicodedata
from collections import Counter

import pytest

from inferplane.telemetry.quality.drift import _SCRIPTS, dominant_script


def _by_every_character(text: str, sample: int = 400) -> str:
    counts: Counter[str] = Counter()
    for char in text[:sample]:
        if char.isalpha():
            name = unicodedata.name(char, "")
            counts[_SCRIPTS.get(name.split(" ", 1)[0], "other")] += 1
    return counts.most_common(1)[0][0] if counts else "none"


@pytest.mark.parametrize(
    "text",
    ["", "123 !?", "Say hello.", "ab мн", "мн ab", "你好 hi", "Привет, world мир", "ééé abc",
     "x" * 500 + "я" * 10, "ا ب ت a"],
)  # fmt: skip
def test_the_same_script_as_naming_every_character(text: str) -> None:
    assert dominant_script(text) == _by_every_character(text)


def test_random_mixes() -> None:
    rng = random.Random(7)
    alphabet = "abcXYZ ,.1éñабвгαβγ你好かなاب"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        assert dominant_script(text, sample=40) == _by_every_character(text, sample=40)
