"""What one server process holds: its engine(s), names, settings, drain state and metrics.

The engine slot starts empty while the model loads (so /health answers and /ready says 503),
then the loader fills it. Routes reach everything through `ServerState`, never module globals.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from inferplane.engine.compute.embedding import AsyncEmbeddingModel
from inferplane.engine.core.protocol import EngineClient, EngineStats
from inferplane.server.drain import DrainState
from inferplane.server.errors import APIError
from inferplane.server.metrics import ServerMetrics
from inferplane.telemetry.tracing import Tracing, setup_tracing

Clock = Callable[[], float]
T = TypeVar("T")


@dataclass(frozen=True)
class ServerSettings:
    """Defaults for `inferplane serve`; the CLI and fleet files override them."""

    model_name: str | None  # the generation model's served name; None: embeddings only
    embedding_model_name: str | None = None
    model_version: str = "unversioned"
    admin_key: str | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    drain_timeout_s: float = 30.0
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        if self.model_name is None and self.embedding_model_name is None:
            raise ValueError("serve at least one model: a generation or an embedding model")
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024: JSON requests need room")
        if self.drain_timeout_s <= 0:
            raise ValueError("drain_timeout_s must be positive, e.g. 30")


@dataclass
class ServerState:
    settings: ServerSettings
    engine: EngineClient | None = None
    embedder: AsyncEmbeddingModel | None = None
    clock: Clock = time.monotonic
    wall_clock: Clock = time.time
    drain: DrainState = field(default_factory=DrainState)
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    # Off (a no-op tracer) unless `inferplane serve` sets it up from the environment.
    tracing: Tracing = field(default_factory=lambda: setup_tracing("inferplane-replica", env={}))
    load_error: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        if self.settings.model_name is not None:
            self.metrics.watch_engine(self.settings.model_name, self.engine_stats)

    def engine_stats(self) -> EngineStats | None:
        return None if self.engine is None else self.engine.stats()

    @property
    def loaded(self) -> bool:
        has_engine = self.settings.model_name is None or self.engine is not None
        has_embedder = self.settings.embedding_model_name is None or self.embedder is not None
        return has_engine and has_embedder

    @property
    def model_names(self) -> list[str]:
        names = (self.settings.model_name, self.settings.embedding_model_name)
        return [name for name in names if name is not None]

    @property
    def sleeping(self) -> bool:
        stats = self.engine_stats()
        return stats is not None and stats.sleeping

    def generation_engine(self, requested: str) -> EngineClient:
        """The engine serving `requested`, or the error the client should get."""
        if self.settings.model_name is None or requested != self.settings.model_name:
            if requested == self.settings.embedding_model_name:
                raise APIError(
                    400,
                    f"model {requested!r} is an embedding model: use /v1/embeddings",
                    param="model",
                    code="model_not_supported",
                )
            raise _unknown_model(requested)
        engine = self._ready(self.engine)
        if self.sleeping:
            raise APIError(
                503,
                "the model is asleep: POST /admin/wake first",
                code="sleeping",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            )
        return engine

    def embedding_model(self, requested: str) -> AsyncEmbeddingModel:
        if requested != self.settings.embedding_model_name:
            if requested == self.settings.model_name:
                raise APIError(
                    400,
                    f"model {requested!r} does not produce embeddings",
                    param="model",
                    code="model_not_supported",
                )
            raise _unknown_model(requested)
        return self._ready(self.embedder)

    def _ready(self, model: T | None) -> T:
        if model is None:
            raise APIError(
                503,
                "the model is still loading",
                code="model_loading",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            )
        return model


def _unknown_model(name: str) -> APIError:
    return APIError(
        404, f"the model {name!r} does not exist", param="model", code="model_not_found"
    )
