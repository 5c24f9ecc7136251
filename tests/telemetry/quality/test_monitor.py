# ruff: noqa: RUF001 (Russian prompts: Cyrillic letters that look Latin are meant)
"""Input drift on real prompts and the MiniLM embedding model the platform serves: a stream of
prompts in another language (Russian, after an English reference) moves the script and
embedding scores past their alert levels; a fresh resample of the English prompts does not."""

import random
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from inferplane.engine.compute.embedding import EmbeddingModel
from inferplane.telemetry.quality.drift import dominant_script, length_bin, psi
from inferplane.telemetry.quality.monitor import DriftMonitor, DriftScores, DriftSettings

pytestmark = pytest.mark.timeout(120)
PASSAGE = Path(__file__).parents[2] / "engine" / "data" / "passage.txt"
RUSSIAN = (
    "Расскажи, пожалуйста, как работает маяк в шторм.",
    "Сколько лет смотритель провёл на северном мысе?",
    "Напиши короткое письмо другу о зимнем море.",
    "Почему лампа погасла во второй раз?",
    "Объясни, как очистить стекло от соли.",
    "Какие книги читала хранительница маяка по вечерам?",
    "Переведи этот абзац на простой язык для детей.",
    "Что делать, если ветер срывает с перил?",
    "Опиши утро после бури на берегу.",
    "Составь список вещей для долгой зимовки.",
    "Кто приезжал на остров летом и зачем?",
    "Сравни старые маяки с современными огнями.",
)
SETTINGS = DriftSettings(reference_size=60, live_size=60, min_live=30)
ALERT = {"length": 0.25, "script": 0.25}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def minilm(minilm_dir: Path) -> EmbeddingModel:
    return EmbeddingModel.load(minilm_dir, device="cpu")


def _english(rng: random.Random, n: int) -> list[str]:
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", PASSAGE.read_text()) if len(s) > 20]
    return [" ".join(rng.sample(sentences, rng.randint(1, 2))) for _ in range(n)]


def _russian(rng: random.Random, n: int) -> list[str]:
    return [" ".join(rng.sample(RUSSIAN, rng.randint(2, 4))) for _ in range(n)]


def _scores(minilm: EmbeddingModel, reference: list[str], live: list[str]) -> DriftScores:
    monitor = DriftMonitor("chat", "v1", SETTINGS)
    vectors = minilm.embed([*reference, *live]).embeddings
    for text, vector in zip([*reference, *live], vectors, strict=True):
        monitor.add(text, np.asarray(vector))
    return monitor.scores()


def test_a_stream_in_another_language_drifts_and_a_resample_does_not(
    minilm: EmbeddingModel,
) -> None:
    rng = random.Random(3)
    reference = _english(rng, 60)
    quiet = _scores(minilm, reference, _english(rng, 60))
    shifted = _scores(minilm, reference, _russian(rng, 60))
    assert quiet.live == shifted.live == 60
    assert quiet.length is not None and quiet.length < ALERT["length"]
    assert quiet.script is not None and quiet.script < 0.01
    assert shifted.script is not None and shifted.script > 5 * ALERT["script"]
    assert quiet.embedding is not None and shifted.embedding is not None
    assert shifted.embedding > 5 * quiet.embedding, (quiet, shifted)


def test_no_score_before_the_windows_fill() -> None:
    monitor = DriftMonitor("chat", "v1", SETTINGS)
    for _ in range(60 + 29):
        monitor.add("hello there")
    assert monitor.scores().length is None and monitor.scores().embedding is None


def test_helpers() -> None:
    assert [length_bin(n) for n in (0, 1, 3, 4, 10**9)] == [0, 0, 1, 2, 11]
    assert dominant_script("Привет, world мир") == "cyrillic"
    assert dominant_script("你好 hi") == "han" and dominant_script("123 !") == "none"
    assert psi(Counter("aabb"), Counter("aabb")) == 0.0
    assert psi(Counter("aaaa"), Counter("bbbb")) > 5
