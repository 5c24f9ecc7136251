"""Drift statistics between a reference sample and a live sample of prompts.

Prompt length: the population stability index (PSI) over log2 length bins. Script mix: the PSI
over each prompt's dominant writing system. Embeddings: the energy distance between the two
samples of unit vectors (a two-sample distance that is 0 when they come from one
distribution and needs no binning in 384 dimensions). Reading PSI: under 0.1 stable, 0.1 to
0.25 a moderate shift, over 0.25 a large one.
"""

import math
import unicodedata
from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
EPSILON = 1e-4  # the share an empty bin counts as, so the PSI stays finite
LENGTH_BINS = 12  # 1, 2-3, 4-7, ... characters; the last bin takes everything longer
# Unicode name prefixes -> script; the first word of a letter's name says its script.
_SCRIPTS = {
    "LATIN": "latin", "CYRILLIC": "cyrillic", "GREEK": "greek", "ARABIC": "arabic",
    "HEBREW": "hebrew", "DEVANAGARI": "devanagari", "THAI": "thai", "HANGUL": "hangul",
    "HIRAGANA": "kana", "KATAKANA": "kana", "CJK": "han", "GEORGIAN": "georgian",
    "ARMENIAN": "armenian", "BENGALI": "bengali", "TAMIL": "tamil",
}  # fmt: skip


def length_bin(length: int) -> int:
    """The log2 bin of a prompt's length in characters."""
    return min(max(length, 1).bit_length() - 1, LENGTH_BINS - 1)


def dominant_script(text: str, sample: int = 400) -> str:
    """The script most of the text's letters are written in ("none" without letters); the
    first `sample` characters suffice. Each distinct character is named once (a name look-up
    per character cost ~0.6 us, 270 us for a 400-character prompt), and ASCII text, whose
    letters are all Latin, needs no look-up at all."""
    head = text[:sample]
    if head.isascii():  # an ASCII letter is a cased one: lower() and upper() then differ
        return "latin" if head.lower() != head.upper() else "none"
    counts: Counter[str] = Counter()
    for char, count in Counter(head).items():  # first-seen order: ties fall as before
        if char.isalpha():
            name = unicodedata.name(char, "")
            counts[_SCRIPTS.get(name.split(" ", 1)[0], "other")] += count
    return counts.most_common(1)[0][0] if counts else "none"


def psi(reference: Counter[str] | Counter[int], live: Counter[str] | Counter[int]) -> float:
    """Population stability index of two histograms over the union of their bins."""
    ref_total, live_total = sum(reference.values()), sum(live.values())
    if not ref_total or not live_total:
        return 0.0
    score = 0.0
    for key in set(reference) | set(live):
        expected = max(reference.get(key, 0) / ref_total, EPSILON)  # type: ignore[call-overload]
        actual = max(live.get(key, 0) / live_total, EPSILON)  # type: ignore[call-overload]
        score += (actual - expected) * math.log(actual / expected)
    return score


def energy_distance(reference: FloatArray, live: FloatArray) -> float:
    """The energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| between two samples (rows)."""
    if len(reference) < 2 or len(live) < 2:
        return 0.0
    between = _mean_distance(reference, live)
    within_ref = _mean_distance(reference, reference, same=True)
    within_live = _mean_distance(live, live, same=True)
    return max(0.0, 2 * between - within_ref - within_live)


def _mean_distance(a: FloatArray, b: FloatArray, same: bool = False) -> float:
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    distances = np.sqrt(np.clip(squared, 0.0, None))
    if same:  # leave out each row's distance to itself
        n = len(a)
        return float(distances.sum() / (n * (n - 1)))
    return float(distances.mean())


def stack(vectors: Sequence[FloatArray]) -> FloatArray:
    return np.asarray(np.stack(list(vectors)), dtype=np.float32)
