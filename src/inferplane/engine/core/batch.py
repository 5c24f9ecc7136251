"""The contract between the engine's step loop and the model runner.

Each step the scheduler decides how many tokens of each request to compute; the engine turns
that into one `StepBatch` of `SequenceChunk`s and hands it to a `ModelRunner`. The runner runs
one forward over the ragged batch against the paged KV cache, writes the chunk's keys and
values into the request's blocks, and samples a token for each chunk that reaches the end of
its request's known tokens. No torch here: the runner owns all tensors.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from inferplane.engine.core.sampling_params import SamplingParams


@dataclass(frozen=True)
class SequenceChunk:
    """The tokens of one request to compute in this step.

    `start_position` is the number of the request's tokens already in the KV cache, so
    token_ids[i] sits at position start_position + i and its KV goes to slot
    block_table[p // block_size] * block_size + p % block_size. `block_table` covers at least
    start_position + len(token_ids) positions.
    """

    request_id: str
    token_ids: Sequence[int]
    start_position: int
    block_table: Sequence[int]
    sample: bool
    params: SamplingParams
    output_token_ids: Sequence[int] = ()  # generated so far: penalties look at these
    prompt_token_ids: Sequence[int] = ()  # repetition penalty also looks at the prompt

    @property
    def end_position(self) -> int:
        return self.start_position + len(self.token_ids)


@dataclass(frozen=True)
class StepBatch:
    chunks: Sequence[SequenceChunk]

    @property
    def num_tokens(self) -> int:
        return sum(len(chunk.token_ids) for chunk in self.chunks)


@dataclass(frozen=True)
class TokenLogprob:
    token_id: int
    logprob: float


@dataclass(frozen=True)
class SampledToken:
    """The token sampled for one chunk with `sample=True`, with its log-probability and the
    top alternatives when the request asked for logprobs."""

    request_id: str
    token_id: int
    logprob: float | None = None
    top_logprobs: tuple[TokenLogprob, ...] = ()
    # The token's raw-distribution logprob whether or not logprobs were asked for: the
    # request's confidence (engine/core/confidence.py) is tallied from it.
    confidence: float | None = None


class ModelRunner(Protocol):
    """Runs a model over a step's ragged batch with a paged KV cache.

    These are all the members the engine uses. A runner with no context limit or EOS ids of its
    own, or with nothing to release while asleep, can inherit `RunnerDefaults` for those.
    """

    @property
    def block_size(self) -> int: ...

    @property
    def num_blocks(self) -> int: ...

    @property
    def max_model_len(self) -> int | None:
        """The longest sequence the model takes (its position limit); None when it has none
        of its own, and then the engine config must set max_model_len."""
        ...

    @property
    def eos_token_ids(self) -> Sequence[int]:
        """The checkpoint's end-of-sequence ids; the engine uses them where its tokenizer
        names none."""
        ...

    def execute(self, batch: StepBatch) -> list[SampledToken]:
        """Forward the batch, write its KV, and sample one token per sampling chunk (in order)."""
        ...

    def sleep(self) -> None:
        """Release the KV cache (its contents are lost) and, on an accelerator, the weights'
        device memory. The engine calls it once per sleep, with no request running."""
        ...

    def wake(self) -> None:
        """Take back what `sleep` released, so that `execute` works again."""
        ...


class RunnerDefaults:
    """The optional members of a `ModelRunner`, for runners to inherit: no context limit and
    no EOS ids of their own, and nothing to release while asleep."""

    max_model_len: int | None = None
    eos_token_ids: Sequence[int] = ()

    def sleep(self) -> None:
        """Nothing to release."""

    def wake(self) -> None:
        """Nothing to take back."""
