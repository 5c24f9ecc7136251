"""What the model server needs from an engine: the async front's interface, its stats, its
errors, and what the engine and the server need of a tokenizer."""

from collections.abc import AsyncGenerator, Mapping, Sequence
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


class EngineTokenizer(Protocol):
    """What the engine needs of a tokenizer: output text, and the ids that end a sequence
    (when empty, the engine takes the runner's)."""

    @property
    def eos_token_ids(self) -> Sequence[int]: ...

    def decode(self, token_ids: Sequence[int]) -> str: ...


class TextTokenizer(EngineTokenizer, Protocol):
    """The tokenizer side the server uses."""

    @property
    def vocab_size(self) -> int:
        """Token ids run from 0 to vocab_size - 1 (a prompt of ids is checked against it)."""
        ...

    def encode(self, text: str) -> list[int]: ...

    def encode_chat(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """Prompt ids for chat messages: the chat template applied, with no special tokens on
        top of the template's. Raises ValueError when the template rejects the messages."""
        ...


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
    ) -> AsyncGenerator[RequestOutput, None]:
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
