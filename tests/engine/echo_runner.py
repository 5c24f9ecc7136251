"""A deterministic ModelRunner test seam: it keeps a 'KV cache' of token ids in paged slots,
and its next token is a pure function of the whole sequence read back through the block
table, so a wrong block table, a bad prefix hit or a lost preemption changes the output."""

import time
from collections.abc import Sequence

from inferplane.engine.core.batch import SampledToken, StepBatch

LETTERS = 26
FIRST = ord("a")


def next_token(sequence: Sequence[int]) -> int:
    """A lowercase letter chosen by the sequence (byte-level tokens)."""
    return FIRST + (sum(sequence) * 7 + len(sequence) * 3) % LETTERS


def reference(prompt: Sequence[int], count: int) -> list[int]:
    """What generating `count` tokens must give, computed without any cache."""
    tokens, out = list(prompt), []
    for _ in range(count):
        out.append(next_token(tokens))
        tokens.append(out[-1])
    return out


class PagedEchoRunner:
    """Implements every member of the engine's ModelRunner protocol."""

    eos_token_ids: tuple[int, ...] = ()  # the tests' tokenizers name theirs

    def __init__(
        self,
        num_blocks: int = 64,
        block_size: int = 4,
        max_model_len: int = 256,
        step_seconds: float = 0.0,
    ) -> None:
        # step_seconds makes a step take time, as a model's does (and frees the GIL meanwhile),
        # so tests that react to a running stream are not racing a loop of pure Python
        self.step_seconds = step_seconds
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.max_model_len = max_model_len
        self.slots: dict[int, int] = {}
        self.steps: list[dict[str, int]] = []
        self.asleep = False

    def execute(self, batch: StepBatch) -> list[SampledToken]:
        assert not self.asleep
        if self.step_seconds:
            time.sleep(self.step_seconds)
        bs = self.block_size
        self.steps.append({c.request_id: len(c.token_ids) for c in batch.chunks})
        sampled = []
        for chunk in batch.chunks:
            for offset, token in enumerate(chunk.token_ids):
                pos = chunk.start_position + offset
                self.slots[chunk.block_table[pos // bs] * bs + pos % bs] = token
            if chunk.sample:
                seq = [
                    self.slots[chunk.block_table[p // bs] * bs + p % bs]
                    for p in range(chunk.end_position)
                ]
                token = next_token(seq)
                sampled.append(SampledToken(chunk.request_id, token, logprob=-0.5))
        return sampled

    def sleep(self) -> None:
        self.asleep = True
        self.slots.clear()

    def wake(self) -> None:
        self.asleep = False
