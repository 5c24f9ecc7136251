"""What the model server needs from an engine: the async front's interface and its stats."""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from inferplane.engine.core.outputs import RequestOutput
from inferplane.engine.core.sampling_params import SamplingParams


@dataclass(frozen=True)
class EngineStats:
    """A snapshot for /metrics and the gateway's balancer (vLLM-compatible meanings)."""

    num_running: int
    num_waiting: int
    kv_usage: float  # fraction of KV blocks in use, 0..1
    prefix_cache_queries: int  # prompt tokens looked up in the prefix cache, total
    prefix_cache_hits: int  # of which found cached, total
    num_preemptions: int  # total
    prompt_tokens_total: int
    generation_tokens_total: int
    kv_evictions: int
    sleeping: bool


class TextTokenizer(Protocol):
    """The tokenizer side the server uses."""

    @property
    def eos_token_ids(self) -> Sequence[int]: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, token_ids: Sequence[int]) -> str: ...

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str: ...


class EngineClient(Protocol):
    """The async front of a generation engine."""

    @property
    def model_name(self) -> str: ...

    @property
    def max_model_len(self) -> int: ...

    @property
    def tokenizer(self) -> TextTokenizer: ...

    def generate(
        self,
        prompt_token_ids: Sequence[int],
        params: SamplingParams,
        request_id: str,
        priority: int = 0,
    ) -> AsyncIterator[RequestOutput]:
        """Stream updates until finished. Raises QueueFullError when too many are waiting.
        Closing the iterator early (client gone) aborts the request and frees its blocks."""
        ...

    async def abort(self, request_id: str) -> None: ...

    def stats(self) -> EngineStats: ...

    async def sleep(self) -> None:
        """Free the KV cache and move weights to host memory (the warm tier)."""
        ...

    async def wake(self) -> None: ...

    async def shutdown(self) -> None: ...


class QueueFullError(RuntimeError):
    """Too many requests are waiting; the server answers 429 with Retry-After."""


class EngineShutdownError(RuntimeError):
    """The engine was shut down, or its core is gone; no new requests are taken (the server
    answers 503)."""
