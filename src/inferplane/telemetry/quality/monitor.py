"""Drift windows per model version: the first `reference_size` sampled prompts of a version are
its reference, the last `live_size` its live window, and a score per signal says how far the
live window has moved (drift.py): PSI on lengths and on the script mix, the energy distance on
prompt embeddings where an embedding model is at hand.
"""

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from inferplane.telemetry.quality.drift import (
    FloatArray,
    dominant_script,
    energy_distance,
    length_bin,
    psi,
    stack,
)

SIGNALS = ("length", "script", "embedding")


@dataclass(frozen=True)
class DriftSettings:
    reference_size: int = 200
    live_size: int = 200
    min_live: int = 50  # no score on fewer live prompts
    embedding_sample: int = 100  # the most embeddings compared per side (O(n^2) distances)

    def __post_init__(self) -> None:
        if not 0 < self.min_live <= self.live_size or self.reference_size < 1:
            raise ValueError("drift windows need reference_size >= 1, 0 < min_live <= live_size")


@dataclass(frozen=True)
class DriftScores:
    model: str
    model_version: str
    reference: int  # prompts in the reference window
    live: int
    length: float | None  # None: too few live prompts yet
    script: float | None
    embedding: float | None  # None also without embeddings

    def by_signal(self) -> dict[str, float | None]:
        return {"length": self.length, "script": self.script, "embedding": self.embedding}


@dataclass
class _Window:
    size: int
    lengths: deque[int] = field(init=False)
    scripts: deque[str] = field(init=False)
    vectors: deque[FloatArray] = field(init=False)

    def __post_init__(self) -> None:
        self.lengths, self.scripts = deque(maxlen=self.size), deque(maxlen=self.size)
        self.vectors = deque(maxlen=self.size)

    def add(self, text: str, vector: FloatArray | None) -> None:
        self.lengths.append(length_bin(len(text)))
        self.scripts.append(dominant_script(text))
        if vector is not None:
            self.vectors.append(vector)

    @property
    def full(self) -> bool:
        return len(self.lengths) >= self.size


class DriftMonitor:
    """The reference and live windows of one model version."""

    def __init__(self, model: str, version: str, settings: DriftSettings | None = None) -> None:
        self.model, self.version = model, version
        self.settings = settings or DriftSettings()
        self.reference = _Window(self.settings.reference_size)
        self.live = _Window(self.settings.live_size)

    def add(self, text: str, vector: FloatArray | None = None) -> None:
        """A sampled prompt: it fills the reference first, then the live window."""
        window = self.live if self.reference.full else self.reference
        window.add(text, vector)

    def scores(self) -> DriftScores:
        ref, live = self.reference, self.live
        ready = ref.full and len(live.lengths) >= self.settings.min_live
        length = psi(Counter(ref.lengths), Counter(live.lengths)) if ready else None
        script = psi(Counter(ref.scripts), Counter(live.scripts)) if ready else None
        embedding = self._embedding_distance() if ready else None
        return DriftScores(
            self.model, self.version, len(ref.lengths), len(live.lengths), length, script, embedding
        )

    def _embedding_distance(self) -> float | None:
        n = self.settings.embedding_sample
        ref, live = list(self.reference.vectors)[:n], list(self.live.vectors)[-n:]
        if len(ref) < self.settings.min_live // 2 or len(live) < self.settings.min_live // 2:
            return None
        return energy_distance(stack(ref), stack(live))


class DriftBook:
    """Drift monitors by (model, version)."""

    def __init__(self, settings: DriftSettings | None = None) -> None:
        self.settings = settings or DriftSettings()
        self.monitors: dict[tuple[str, str], DriftMonitor] = {}

    def add(self, model: str, version: str, text: str, vector: FloatArray | None = None) -> None:
        monitor = self.monitors.get((model, version))
        if monitor is None:
            monitor = DriftMonitor(model, version, self.settings)
            self.monitors[(model, version)] = monitor
        monitor.add(text, vector)

    def scores(self) -> list[DriftScores]:
        return [monitor.scores() for monitor in self.monitors.values()]


def as_vector(values: list[float]) -> FloatArray:
    return np.asarray(values, dtype=np.float32)
