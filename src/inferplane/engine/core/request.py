"""One generation request as the scheduler and the KV cache see it. Pure data, no torch.

A request knows its tokens (prompt + generated so far) and how many of them already have
keys and values in the cache (`num_computed_tokens`). The scheduler's one rule is to give each
request `num_tokens - num_computed_tokens` more tokens, within the step's budget.
"""

import enum
from collections.abc import Iterable, Sequence

from inferplane.engine.core.confidence import ConfidenceTally
from inferplane.engine.core.sampling_params import SamplingParams


class RequestStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    PREEMPTED = "preempted"
    FINISHED_STOPPED = "finished_stopped"
    FINISHED_LENGTH = "finished_length"
    FINISHED_ABORTED = "finished_aborted"

    @property
    def finished(self) -> bool:
        return self in _FINISHED

    @property
    def finish_reason(self) -> str | None:
        """The OpenAI finish_reason for a finished status ("stop", "length", "abort")."""
        return _FINISH_REASONS.get(self)


_FINISHED = frozenset(
    {
        RequestStatus.FINISHED_STOPPED,
        RequestStatus.FINISHED_LENGTH,
        RequestStatus.FINISHED_ABORTED,
    }
)
_FINISH_REASONS = {
    RequestStatus.FINISHED_STOPPED: "stop",
    RequestStatus.FINISHED_LENGTH: "length",
    RequestStatus.FINISHED_ABORTED: "abort",
}


class Request:
    """The mutable state of one request; `__slots__` because the step loop touches it a lot.

    `priority`: lower values are served first under the priority policy (ties by arrival).
    `stop_ids` merges the EOS ids (unless ignore_eos) with the request's stop_token_ids so the
    finish check is a single set lookup.
    """

    __slots__ = (
        "all_token_ids",
        "arrival_time",
        "block_hashes",
        "confidence",
        "first_token_time",
        "num_cached_tokens",
        "num_computed_tokens",
        "num_preemptions",
        "num_prompt_tokens",
        "output_token_ids",
        "params",
        "priority",
        "prompt_token_ids",
        "request_id",
        "status",
        "stop_ids",
        "stop_reason",
    )

    def __init__(
        self,
        request_id: str,
        prompt_token_ids: Sequence[int],
        params: SamplingParams,
        *,
        arrival_time: float = 0.0,
        priority: int = 0,
        eos_token_ids: Iterable[int] = (),
    ) -> None:
        self.request_id = request_id
        self.prompt_token_ids = list(prompt_token_ids)
        self.num_prompt_tokens = len(self.prompt_token_ids)
        self.all_token_ids = list(self.prompt_token_ids)
        self.output_token_ids: list[int] = []
        self.params = params
        self.arrival_time = arrival_time
        self.priority = priority
        self.status = RequestStatus.WAITING
        self.num_computed_tokens = 0
        self.num_cached_tokens = 0
        self.num_preemptions = 0
        self.block_hashes: list[int] = []  # chained hashes of full blocks, filled lazily
        self.first_token_time: float | None = None
        self.stop_reason: str | int | None = None
        self.confidence = ConfidenceTally()  # the sampled tokens' raw logprobs, summed
        eos = () if params.ignore_eos else tuple(eos_token_ids)
        self.stop_ids = frozenset((*eos, *params.stop_token_ids))

    @property
    def num_tokens(self) -> int:
        return len(self.all_token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.output_token_ids)

    @property
    def is_finished(self) -> bool:
        return self.status in _FINISHED

    def append_output(self, token_id: int) -> None:
        self.output_token_ids.append(token_id)
        self.all_token_ids.append(token_id)

    def __repr__(self) -> str:
        return (
            f"Request({self.request_id!r}, tokens={self.num_tokens}, "
            f"computed={self.num_computed_tokens}, status={self.status.value})"
        )
