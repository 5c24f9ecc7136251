"""What the engine's async front yields to its callers (the model server, the CLI)."""

from dataclasses import dataclass, field
from typing import Literal

from inferplane.engine.core.batch import TokenLogprob
from inferplane.engine.core.confidence import Confidence

FinishReason = Literal["stop", "length", "abort"]


@dataclass(frozen=True)
class TokenInfo:
    """One generated token with its text piece (may be empty while a UTF-8 character is still
    incomplete) and, when asked for, its logprob and alternatives."""

    token_id: int
    text: str
    logprob: float | None = None
    top_logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class RequestOutput:
    """An incremental update for one request: the tokens added since the last update.

    `finished` is True exactly once, on the last update; then `finish_reason` says why
    ("stop": EOS, a stop token or stop string; "length": max_tokens or the context limit;
    "abort": cancelled). Timing fields are seconds from the engine's clock.
    """

    request_id: str
    new_tokens: tuple[TokenInfo, ...]
    finished: bool
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    arrival_time: float = 0.0
    first_token_time: float | None = None
    stop_reason: str | int | None = field(default=None)
    confidence: Confidence | None = None  # on the last update: the completion's confidence

    @property
    def text(self) -> str:
        return "".join(token.text for token in self.new_tokens)
