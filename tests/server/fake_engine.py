"""A stand-in generation engine for server tests while the real async front is not wired:
it follows EngineClient (queue limit, abort, stats) and emits prompt tokens back in a loop."""

import asyncio
from collections.abc import AsyncIterator, Sequence

from inferplane.engine.outputs import RequestOutput, TokenInfo
from inferplane.engine.protocol import EngineStats, QueueFullError
from inferplane.engine.sampling_params import SamplingParams
from inferplane.engine.tokenizer import Tokenizer


class EchoEngine:
    def __init__(self, tokenizer: Tokenizer, max_model_len: int = 256, max_waiting: int = 64):
        self._tokenizer = tokenizer
        self._max_model_len = max_model_len
        self.max_waiting = max_waiting
        self.active: set[str] = set()
        self.aborted: list[str] = []
        self.generated = 0
        self.asleep = False
        self.step_s = 0.001

    @property
    def model_name(self) -> str:
        return "echo"

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    async def generate(
        self,
        prompt_token_ids: Sequence[int],
        params: SamplingParams,
        request_id: str,
        priority: int = 0,
    ) -> AsyncIterator[RequestOutput]:
        if len(self.active) >= self.max_waiting:
            raise QueueFullError("queue full")
        self.active.add(request_id)
        try:
            for i in range(params.max_tokens):
                await asyncio.sleep(self.step_s)
                token = prompt_token_ids[i % len(prompt_token_ids)]
                info = TokenInfo(
                    token,
                    self._tokenizer.decode([token]),
                    -0.5 if params.logprobs is not None else None,
                )
                done = i == params.max_tokens - 1
                self.generated += 1
                yield RequestOutput(
                    request_id,
                    (info,),
                    done,
                    "length" if done else None,
                    len(prompt_token_ids),
                    0,
                    i + 1,
                )
        finally:
            self.active.discard(request_id)

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)

    def stats(self) -> EngineStats:
        return EngineStats(len(self.active), 0, 0.0, 0, 0, 0, 0, self.generated, 0, self.asleep)

    async def sleep(self) -> None:
        self.asleep = True

    async def wake(self) -> None:
        self.asleep = False

    async def shutdown(self) -> None:
        return None
