"""Input drift, sampled off the request path: the request path keeps every `every`-th answered
prompt's body in a bounded queue (an append); a background task reads the prompt text out of
them, embeds a batch with the fleet's embedding model (when it has one and a replica is up),
feeds the drift windows per model version (telemetry/quality/monitor.py) and sets the
inference_input_drift_score gauges.
"""

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from inferplane.telemetry import names
from inferplane.telemetry.quality.monitor import DriftBook, DriftScores, DriftSettings, as_vector

log = logging.getLogger(__name__)
Embedder = Callable[[Sequence[str]], Awaitable[list[list[float]] | None]]
SAMPLE_EVERY = 10  # one prompt in ten is enough for windows of a few hundred
QUEUE = 512  # bodies waiting for the background task; older ones drop first
INTERVAL_S = 2.0
MAX_TEXT = 2000  # characters of a prompt kept (length bins cap far below the embedder's limit)


class DriftSampler:
    """Samples prompts per model version and scores their drift in the background."""

    def __init__(
        self,
        registry: CollectorRegistry,
        embedder: Embedder | None = None,
        settings: DriftSettings | None = None,
        every: int = SAMPLE_EVERY,
    ) -> None:
        self.book = DriftBook(settings)
        self.embedder = embedder
        self.every = max(every, 1)
        self.gauge = names.gauge(names.DRIFT_SCORE, registry)
        self._pending: deque[tuple[str, str, bytes]] = deque(maxlen=QUEUE)
        self._seen = 0
        self._task: asyncio.Task[None] | None = None

    def sample(self, model: str, version: str, body: bytes) -> None:
        """The request path's part: one counter, and an append for the sampled ones."""
        self._seen += 1
        if self._seen % self.every == 0:
            self._pending.append((model, version, body))

    async def drain(self) -> int:
        """Score what was sampled since the last call; how many prompts were added."""
        batch = [self._pending.popleft() for _ in range(len(self._pending))]
        prompts = [(m, v, text) for m, v, body in batch if (text := prompt_text(body))]
        if not prompts:
            return 0
        vectors = await self._embed([text for _, _, text in prompts])
        for index, (model, version, text) in enumerate(prompts):
            vector = None if vectors is None else as_vector(vectors[index])
            self.book.add(model, version, text, vector)
        for scores in self.book.scores():
            self._publish(scores)
        return len(prompts)

    async def _embed(self, texts: list[str]) -> list[list[float]] | None:
        if self.embedder is None:
            return None
        try:
            vectors = await self.embedder(texts)
        except Exception as error:  # drift must never hurt serving
            log.debug("drift: no embeddings this round: %s", error)
            return None
        return vectors if vectors is not None and len(vectors) == len(texts) else None

    def _publish(self, scores: DriftScores) -> None:
        for signal, value in scores.by_signal().items():
            if value is not None:
                self.gauge.labels(scores.model, scores.model_version, signal).set(value)

    def start(self, interval_s: float = INTERVAL_S) -> None:
        self._task = asyncio.create_task(self._loop(interval_s))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.drain()
            except Exception:  # a bad round is logged; the next one tries again
                log.exception("drift scoring failed")


def prompt_text(body: bytes) -> str:
    """The text a request asks about: a chat's last user message, or a completion's prompt."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(data, dict):
        return ""
    messages = data.get("messages")
    if isinstance(messages, list):
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        return _content(users[-1].get("content"))[:MAX_TEXT] if users else ""
    prompt = data.get("prompt")
    return prompt[:MAX_TEXT] if isinstance(prompt, str) else ""


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: the text ones, joined
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return " ".join(p for p in parts if isinstance(p, str))
    return ""
