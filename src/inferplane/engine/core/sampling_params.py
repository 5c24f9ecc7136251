"""How one request wants its tokens chosen and when it stops. Pure data, no torch.

Validation names the OpenAI parameter at fault, so the server can answer 400 with `param`.
"""

from dataclasses import dataclass, field


class InvalidParameterError(ValueError):
    """A sampling parameter out of range; `param` is the OpenAI field name."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


@dataclass(frozen=True)
class SamplingParams:
    """Per-request sampling. temperature 0 means greedy; top_k 0 (or -1) means off."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    logprobs: int | None = None  # None: no logprobs; k >= 0: chosen token plus k alternatives
    include_stop_str_in_output: bool = False
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for check in _CHECKS:
            check(self)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def needs_penalties(self) -> bool:
        return (
            self.presence_penalty != 0.0
            or self.frequency_penalty != 0.0
            or self.repetition_penalty != 1.0
        )


def _check_lengths(p: SamplingParams) -> None:
    if p.max_tokens < 1:
        raise InvalidParameterError("max_tokens", f"must be >= 1, got {p.max_tokens}")
    if len(p.stop) > 4:
        raise InvalidParameterError("stop", "at most 4 stop sequences")
    if any(not s for s in p.stop):
        raise InvalidParameterError("stop", "stop sequences must not be empty")


def _check_distribution(p: SamplingParams) -> None:
    if not 0.0 <= p.temperature <= 2.0:
        raise InvalidParameterError("temperature", f"must be in [0, 2], got {p.temperature}")
    if not 0.0 < p.top_p <= 1.0:
        raise InvalidParameterError("top_p", f"must be in (0, 1], got {p.top_p}")
    if p.top_k < -1:
        raise InvalidParameterError("top_k", f"must be -1, 0 (off) or positive, got {p.top_k}")
    if not 0.0 <= p.min_p <= 1.0:
        raise InvalidParameterError("min_p", f"must be in [0, 1], got {p.min_p}")


def _check_penalties(p: SamplingParams) -> None:
    for name in ("presence_penalty", "frequency_penalty"):
        value = getattr(p, name)
        if not -2.0 <= value <= 2.0:
            raise InvalidParameterError(name, f"must be in [-2, 2], got {value}")
    if not 0.0 < p.repetition_penalty <= 2.0:
        raise InvalidParameterError(
            "repetition_penalty", f"must be in (0, 2], got {p.repetition_penalty}"
        )


def _check_logprobs(p: SamplingParams) -> None:
    if p.logprobs is not None and not 0 <= p.logprobs <= 20:
        raise InvalidParameterError("top_logprobs", f"must be in [0, 20], got {p.logprobs}")


_CHECKS = (_check_lengths, _check_distribution, _check_penalties, _check_logprobs)
