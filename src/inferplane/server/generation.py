"""Running one API request on the engine: sampling params, context checks, the n choices.

A request becomes one engine request per choice (per prompt for completions). Their streams
are merged; an early close (client gone, error) aborts every engine request still running, so
its KV blocks are freed at once.
"""

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

import anyio

from inferplane.engine.core.confidence import Confidence
from inferplane.engine.core.engine import ContextLengthExceededError
from inferplane.engine.core.outputs import RequestOutput, TokenInfo
from inferplane.engine.core.protocol import EngineClient, EngineShutdownError, QueueFullError
from inferplane.engine.core.sampling_params import InvalidParameterError, SamplingParams
from inferplane.server.errors import APIError
from inferplane.server.protocol import SamplingFields


@dataclass(frozen=True)
class Job:
    """One engine request: the choice index it fills, its prompt and its params."""

    index: int
    request_id: str
    prompt_ids: Sequence[int]
    params: SamplingParams


@dataclass
class Choice:
    """What has been generated so far for one choice."""

    index: int
    text: list[str] = field(default_factory=list)
    tokens: list[TokenInfo] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    confidence: Confidence | None = None  # the engine's, once the choice is finished

    def add(self, out: RequestOutput) -> None:
        self.text.append(out.text)
        self.tokens.extend(out.new_tokens)
        self.prompt_tokens = out.prompt_tokens or self.prompt_tokens
        self.cached_tokens = out.cached_prompt_tokens or self.cached_tokens
        self.completion_tokens = out.completion_tokens or len(self.tokens)
        if out.finished:
            self.finish_reason = "stop" if out.finish_reason == "abort" else out.finish_reason
            self.confidence = out.confidence


def sampling_params(
    req: SamplingFields, max_tokens: int, logprobs: int | None, index: int
) -> SamplingParams:
    """The engine's params for choice `index`; a bad value is a 400 naming the field."""
    seed = None if req.seed is None else req.seed + index  # n choices must differ
    try:
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=_or(req.temperature, 1.0),
            top_p=_or(req.top_p, 1.0),
            top_k=req.top_k,
            min_p=req.min_p,
            seed=seed,
            presence_penalty=req.presence_penalty,
            frequency_penalty=req.frequency_penalty,
            repetition_penalty=req.repetition_penalty,
            stop=req.stop_list(),
            stop_token_ids=tuple(req.stop_token_ids or ()),
            ignore_eos=req.ignore_eos,
            logprobs=logprobs,
        )
    except InvalidParameterError as error:
        raise APIError(400, str(error), param=error.param, code="invalid_value") from error
    except EngineShutdownError as error:
        raise engine_stopped(error) from error


def engine_stopped(error: EngineShutdownError) -> APIError:
    """503 naming why: shut down on purpose, or its process died (then a supervisor restarts
    the server; the client may retry, on another replica behind a gateway)."""
    return APIError(503, f"the engine stopped: {error}", code="shutting_down")


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def resolve_max_tokens(
    engine: EngineClient, prompt_len: int, requested: int | None, default: int | None, what: str
) -> int:
    """max_tokens after the context check: None asks for the rest of the context."""
    limit = engine.max_model_len
    wanted = requested if requested is not None else default
    total = prompt_len + (wanted if wanted is not None else 1)
    if prompt_len >= limit or total > limit:
        raise APIError(
            400,
            f"This model's maximum context length is {limit} tokens. However, you requested "
            f"{total} tokens ({prompt_len} in the {what}, {total - prompt_len} in the "
            "completion). Please reduce the length of the prompt or completion.",
            param="messages" if what == "messages" else "prompt",
            code="context_length_exceeded",
        )
    return wanted if wanted is not None else limit - prompt_len


def check_token_ids(engine: EngineClient, ids: Sequence[int], param: str) -> None:
    vocab = engine.tokenizer.vocab_size
    if any(i >= vocab for i in ids):
        raise APIError(
            400,
            f"token ids must be below the vocabulary size {vocab}",
            param=param,
            code="invalid_value",
        )
    if not ids:
        raise APIError(400, "the prompt is empty", param=param, code="invalid_value")


async def _one(engine: EngineClient, job: Job) -> AsyncGenerator[tuple[int, RequestOutput], None]:
    finished = False
    stream = engine.generate(job.prompt_ids, job.params, job.request_id)
    try:
        async for out in stream:
            finished = out.finished
            yield job.index, out
    except QueueFullError as error:
        raise APIError(
            429,
            "too many requests are waiting; retry later",
            code="queue_full",
            headers={"Retry-After": "1"},
        ) from error
    except ContextLengthExceededError as error:
        raise APIError(400, str(error), param="messages", code="context_length_exceeded") from error
    except InvalidParameterError as error:
        raise APIError(400, str(error), param=error.param, code="invalid_value") from error
    except EngineShutdownError as error:
        raise engine_stopped(error) from error
    finally:
        if not finished:
            with anyio.CancelScope(shield=True):  # the client may be gone: abort anyway
                with contextlib.suppress(Exception):
                    await stream.aclose()
                with contextlib.suppress(Exception):  # an engine shut down has nothing to free
                    await engine.abort(job.request_id)


def run_jobs(
    engine: EngineClient, jobs: Sequence[Job]
) -> AsyncGenerator[tuple[int, RequestOutput], None]:
    """Merge the jobs' streams in arrival order. Closing this iterator aborts them all."""
    if len(jobs) == 1:  # the common case: no tasks, no queue, no extra generator layer
        return _one(engine, jobs[0])
    return _merged(engine, jobs)


async def _merged(
    engine: EngineClient, jobs: Sequence[Job]
) -> AsyncGenerator[tuple[int, RequestOutput], None]:
    queue: asyncio.Queue[tuple[int, RequestOutput] | BaseException | None] = asyncio.Queue()

    async def pump(job: Job) -> None:
        try:
            async with contextlib.aclosing(_one(engine, job)) as stream:
                async for item in stream:
                    queue.put_nowait(item)
        except Exception as error:
            queue.put_nowait(error)
        finally:
            queue.put_nowait(None)

    tasks = [asyncio.create_task(pump(job)) for job in jobs]
    try:
        async for item in _drain_queue(queue, len(tasks)):
            yield item
    finally:
        for task in tasks:
            task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.gather(*tasks, return_exceptions=True)


async def _drain_queue(
    queue: "asyncio.Queue[tuple[int, RequestOutput] | BaseException | None]", producers: int
) -> AsyncGenerator[tuple[int, RequestOutput], None]:
    done = 0
    while done < producers:
        item = await queue.get()
        if item is None:
            done += 1
        elif isinstance(item, BaseException):
            raise item
        else:
            yield item
