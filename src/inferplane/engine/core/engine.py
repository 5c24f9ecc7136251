"""The synchronous step loop: schedule, run the model, sample, detokenize, emit updates.

`LLMEngine` is single-threaded and knows nothing of asyncio; the async front (engine/front)
drives it from one thread: of the server's process, or of a child process. Each `step()` is
one forward over every scheduled request: decodes and (chunks of) prefills together, as the
scheduler's token budget allows.
"""

import time
from collections.abc import Callable, Sequence

from inferplane.engine.core.batch import ModelRunner, SampledToken, SequenceChunk, StepBatch
from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.detokenizer import IncrementalDetokenizer
from inferplane.engine.core.kv_cache import KVCacheManager
from inferplane.engine.core.outputs import FinishReason, RequestOutput, TokenInfo
from inferplane.engine.core.protocol import EngineStats, EngineTokenizer
from inferplane.engine.core.request import Request, RequestStatus
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.engine.core.scheduler import Scheduler, SchedulerConfig, SchedulerOutput

Clock = Callable[[], float]


class ContextLengthExceededError(ValueError):
    """The prompt does not fit the model's context (the server answers 400
    context_length_exceeded)."""


class LLMEngine:
    """One model, its KV cache and its queue. `tokenizer` (None for token ids only) turns
    outputs into text; EOS ids come from the tokenizer, else from the runner."""

    def __init__(
        self,
        config: EngineConfig,
        runner: ModelRunner,
        tokenizer: EngineTokenizer | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config
        self.runner = runner
        self.tokenizer = tokenizer
        self.clock = clock
        self.max_model_len = _resolve_max_model_len(config, runner)
        self.kv = KVCacheManager(runner.num_blocks, runner.block_size, config.enable_prefix_caching)
        self.scheduler = Scheduler(_scheduler_config(config, self.max_model_len), self.kv, clock)
        self._decode = None if tokenizer is None else tokenizer.decode
        self._eos = _eos_ids(tokenizer, runner)
        self._detoks: dict[str, IncrementalDetokenizer | None] = {}
        self._held: dict[str, tuple[TokenInfo, ...]] = {}  # tokens waiting for stream_interval
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self.sleeping = False

    def validate(self, prompt_token_ids: Sequence[int]) -> None:
        validate_prompt(prompt_token_ids, self.max_model_len)

    def add_request(
        self,
        request_id: str,
        prompt_token_ids: Sequence[int],
        params: SamplingParams,
        priority: int = 0,
        arrival_time: float | None = None,
    ) -> Request:
        self.validate(prompt_token_ids)
        arrival = self.clock() if arrival_time is None else arrival_time
        request = Request(
            request_id,
            prompt_token_ids,
            params,
            arrival_time=arrival,
            priority=priority,
            eos_token_ids=self._eos,
        )
        self.scheduler.add_request(request)
        self._detoks[request_id] = self._new_detokenizer(request)
        return request

    def _new_detokenizer(self, request: Request) -> IncrementalDetokenizer | None:
        if self._decode is None:
            return None
        params = request.params
        return IncrementalDetokenizer(
            self._decode, request.prompt_token_ids, params.stop, params.include_stop_str_in_output
        )

    def abort(self, request_id: str) -> RequestOutput | None:
        """Stop a request now and free its blocks; returns its final update, or None when it
        is unknown or already finished."""
        request = self.scheduler.abort_request(request_id)
        self._detoks.pop(request_id, None)
        held = self._held.pop(request_id, ())
        return None if request is None else _final(request, held, "abort")

    def has_unfinished(self) -> bool:
        return self.scheduler.has_unfinished()

    def step(self) -> list[RequestOutput]:
        if self.sleeping:
            return []
        plan = self.scheduler.schedule()
        if not plan:
            return []
        chunks = self._chunks(plan)
        sampled = self.runner.execute(StepBatch(chunks))
        tokens = {s.request_id: s.token_id for s in sampled}
        self.scheduler.update_from_output(plan, tokens)
        self.generation_tokens_total += len(sampled)
        sampling = [r for r, c in zip(plan.requests, chunks, strict=True) if c.sample]
        outputs = [self._output(r, s) for r, s in zip(sampling, sampled, strict=True)]
        return [out for out in outputs if out is not None]

    def _chunks(self, plan: SchedulerOutput) -> list[SequenceChunk]:
        block_ids, chunks = self.kv.block_ids, []
        for request, n in zip(plan.requests, plan.num_tokens, strict=True):
            start = request.num_computed_tokens
            end = start + n
            tokens = request.all_token_ids
            chunks.append(
                SequenceChunk(
                    request.request_id,
                    tokens[start:end] if n > 1 else (tokens[start],),
                    start,
                    block_ids(request.request_id),
                    end == len(tokens),
                    request.params,
                    request.output_token_ids,
                    request.prompt_token_ids,
                )
            )
        return chunks

    def _output(self, request: Request, sampled: SampledToken) -> RequestOutput | None:
        """The request's update for this step; None while `stream_interval` holds it back."""
        if request.num_output_tokens == 1:
            self.prompt_tokens_total += request.num_prompt_tokens
        text = self._text(request, sampled.token_id)
        info = TokenInfo(sampled.token_id, text, sampled.logprob, sampled.top_logprobs)
        if sampled.confidence is not None:
            request.confidence.add(sampled.confidence)
        rid = request.request_id
        held = self._held.pop(rid, None) if self._held else None  # empty: stream_interval 1
        tokens = (info,) if held is None else (*held, info)
        if not request.is_finished:
            if request.num_output_tokens > 1 and len(tokens) < self.config.stream_interval:
                self._held[rid] = tokens
                return None
            return _update(request, tokens)
        self._detoks.pop(rid, None)
        reason = request.status.finish_reason
        return _final(request, tokens, "length" if reason == "length" else "stop")

    def _text(self, request: Request, token_id: int) -> str:
        detok = self._detoks.get(request.request_id)
        if detok is None:
            return ""
        if request.status is RequestStatus.FINISHED_STOPPED and not (
            request.params.include_stop_str_in_output
        ):
            return detok.flush()  # EOS / stop token: its text is not part of the output
        text = detok.add(token_id)
        if detok.stop_reason is not None:
            self._stop_on_string(request, detok.stop_reason)
        elif request.is_finished:
            text += detok.flush()
        return text

    def _stop_on_string(self, request: Request, stop: str) -> None:
        if not request.is_finished:
            self.scheduler.finish_request(request.request_id, RequestStatus.FINISHED_STOPPED)
        request.status = RequestStatus.FINISHED_STOPPED
        request.stop_reason = stop

    def sleep(self) -> None:
        """Send every running request back to the queue, forget cached prefixes (the KV
        tensors go away) and let the runner release its memory. Idempotent."""
        if self.sleeping:
            return
        self.scheduler.preempt_all()
        self.kv.reset_prefix_cache()
        self.runner.sleep()
        self.sleeping = True

    def wake(self) -> None:
        if not self.sleeping:
            return  # a runner's wake reallocates the cache: never under live cached blocks
        self.runner.wake()
        self.sleeping = False

    def stats(self) -> EngineStats:
        kv = self.kv.stats()
        return EngineStats(
            num_running=self.scheduler.num_running,
            num_waiting=self.scheduler.num_waiting,
            kv_usage=kv.usage,
            prefix_cache_queries=kv.prefix_queries,
            prefix_cache_hits=kv.prefix_hits,
            num_preemptions=self.scheduler.num_preemptions,
            prompt_tokens_total=self.prompt_tokens_total,
            generation_tokens_total=self.generation_tokens_total,
            kv_evictions=kv.evictions,
            sleeping=self.sleeping,
        )


def _update(request: Request, tokens: tuple[TokenInfo, ...]) -> RequestOutput:
    return RequestOutput(
        request_id=request.request_id,
        new_tokens=tokens,
        finished=False,
        prompt_tokens=request.num_prompt_tokens,
        cached_prompt_tokens=request.num_cached_tokens,
        completion_tokens=request.num_output_tokens,
        arrival_time=request.arrival_time,
        first_token_time=request.first_token_time,
    )


def _final(request: Request, tokens: tuple[TokenInfo, ...], reason: FinishReason) -> RequestOutput:
    return RequestOutput(
        request_id=request.request_id,
        new_tokens=tokens,
        finished=True,
        finish_reason=reason,
        prompt_tokens=request.num_prompt_tokens,
        cached_prompt_tokens=request.num_cached_tokens,
        completion_tokens=request.num_output_tokens,
        arrival_time=request.arrival_time,
        first_token_time=request.first_token_time,
        stop_reason=request.stop_reason,
        confidence=request.confidence.result(),
    )


def _resolve_max_model_len(config: EngineConfig, runner: ModelRunner) -> int:
    """The configured length, else the runner's; never more than the KV cache can hold for
    one request, since such a request could never be scheduled."""
    length = config.max_model_len or runner.max_model_len
    if length is None or length < 1:
        raise ValueError("max_model_len is unknown: set it in the engine config")
    return min(length, runner.num_blocks * runner.block_size)


def _scheduler_config(config: EngineConfig, max_model_len: int) -> SchedulerConfig:
    return SchedulerConfig(
        max_num_seqs=config.max_num_seqs,
        max_num_batched_tokens=config.max_num_batched_tokens,
        max_model_len=max_model_len,
        policy=config.scheduling_policy,
    )


def _eos_ids(tokenizer: EngineTokenizer | None, runner: ModelRunner) -> tuple[int, ...]:
    ids = () if tokenizer is None else tokenizer.eos_token_ids
    return tuple(int(i) for i in (ids or runner.eos_token_ids))


def validate_prompt(prompt_token_ids: Sequence[int], max_model_len: int) -> None:
    """The checks every front runs before a prompt reaches the engine, with their errors."""
    if not prompt_token_ids:
        raise ValueError("the prompt is empty: give at least one token")
    if len(prompt_token_ids) > max_model_len:
        raise ContextLengthExceededError(
            f"This model's maximum context length is {max_model_len} tokens, but the "
            f"prompt has {len(prompt_token_ids)} tokens: shorten the prompt"
        )
