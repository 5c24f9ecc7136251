"""POST /v1/completions (raw prompts, n choices per prompt) and POST /v1/predict (simple form)."""

import contextlib
import logging
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from inferplane.engine.core.protocol import EngineClient
from inferplane.server import common
from inferplane.server.common import Prefetched, Timer
from inferplane.server.errors import APIError
from inferplane.server.generation import (
    Choice,
    Job,
    check_token_ids,
    resolve_max_tokens,
    run_jobs,
    sampling_params,
)
from inferplane.server.logprobs import completion_logprobs
from inferplane.server.protocol import CompletionRequest, PredictRequest
from inferplane.server.streaming import (
    DONE,
    SSE_HEADERS,
    ChunkTemplate,
    EventStream,
    error_event,
    sse_event,
)

log = logging.getLogger(__name__)
router = APIRouter()
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for completions


@router.post("/v1/completions")
async def completions(body: CompletionRequest, request: Request) -> Response:
    state = common.server_state(request)
    engine = state.generation_engine(body.model)
    request.state.model_label = body.model
    if body.echo and body.logprobs is not None:
        raise APIError(400, "echo with logprobs is not supported", param="echo")
    prompts = _prompts(engine, body.prompt)
    rid = common.new_id("cmpl")
    jobs = _jobs(engine, body, prompts, rid)
    timer = Timer.started(state.clock)
    items = await Prefetched(run_jobs(engine, jobs)).start(timer)
    reply = _Reply(engine, body, rid, int(state.wall_clock()), prompts)
    if body.stream:
        headers = common.response_headers(request, rid, timer) | SSE_HEADERS
        events = _stream(reply, items, timer, request, len(jobs))
        return EventStream(events, headers)
    choices = [Choice(job.index) for job in jobs]
    await common.collect(request, items, choices, timer)
    common.observe(request, body.model, timer, choices, reply.prompt_tokens)
    headers = common.response_headers(request, rid, timer)
    return JSONResponse(reply.complete(choices), headers=headers)


@router.post("/v1/predict")
async def predict(body: PredictRequest, request: Request) -> Response:
    state = common.server_state(request)
    model = body.model or state.settings.model_name or ""
    engine = state.generation_engine(model)
    request.state.model_label = model
    prompt_ids = engine.tokenizer.encode(body.prompt)
    check_token_ids(engine, prompt_ids, "prompt")
    max_tokens = resolve_max_tokens(engine, len(prompt_ids), body.max_tokens, None, "prompt")
    params = CompletionRequest(model=model, prompt=body.prompt, temperature=body.temperature)
    rid = common.new_id("pred")
    job = Job(0, rid, prompt_ids, sampling_params(params, max_tokens, None, 0))
    timer = Timer.started(state.clock)
    choices = [Choice(0)]
    await common.collect(request, Prefetched(run_jobs(engine, [job])), choices, timer)
    common.observe(request, model, timer, choices, len(prompt_ids))
    result = {
        "output": "".join(choices[0].text),
        "model": model,
        "model_version": state.settings.model_version,
        "inference_time_ms": round(timer.total_s * 1000, 1),
        "usage": common.usage(choices, len(prompt_ids)),
    }
    return JSONResponse(result, headers=common.response_headers(request, rid, timer))


def _prompts(engine: EngineClient, prompt: str | list[Any]) -> list[tuple[str, list[int]]]:
    """(text, token ids) per prompt, whichever of OpenAI's four prompt forms was sent."""
    if isinstance(prompt, str):
        items: list[Any] = [prompt]
    elif prompt and all(isinstance(p, int) for p in prompt):
        items = [prompt]
    else:
        items = list(prompt)
    if not items:
        raise APIError(400, "the prompt list is empty", param="prompt", code="invalid_value")
    result = []
    for item in items:
        ids = engine.tokenizer.encode(item) if isinstance(item, str) else list(item)
        check_token_ids(engine, ids, "prompt")
        text = item if isinstance(item, str) else engine.tokenizer.decode(ids)
        result.append((text, ids))
    return result


def _jobs(
    engine: EngineClient,
    body: CompletionRequest,
    prompts: Sequence[tuple[str, list[int]]],
    rid: str,
) -> list[Job]:
    jobs = []
    for p, (_, ids) in enumerate(prompts):
        max_tokens = resolve_max_tokens(
            engine, len(ids), body.max_tokens, DEFAULT_MAX_TOKENS, "prompt"
        )
        for i in range(body.n):
            index = p * body.n + i
            params = sampling_params(body, max_tokens, body.logprobs, i)
            jobs.append(Job(index, f"{rid}-{index}", ids, params))
    return jobs


class _Reply:
    def __init__(
        self,
        engine: EngineClient,
        body: CompletionRequest,
        rid: str,
        created: int,
        prompts: Sequence[tuple[str, list[int]]],
    ) -> None:
        self.engine, self.body, self.rid, self.created = engine, body, rid, created
        self.prompts = prompts
        self.prompt_tokens = sum(len(ids) for _, ids in prompts)
        self._template = ChunkTemplate(self._head(), body.include_usage())

    def _head(self) -> dict[str, Any]:
        return {
            "id": self.rid,
            "object": "text_completion",
            "created": self.created,
            "model": self.body.model,
            "system_fingerprint": None,
        }

    def _echo(self, index: int) -> str:
        return self.prompts[index // self.body.n][0] if self.body.echo else ""

    def complete(self, choices: list[Choice]) -> dict[str, Any]:
        return self._head() | {
            "choices": [self._choice(c) for c in choices],
            "usage": common.usage(choices, self.prompt_tokens),
        }

    def _choice(self, choice: Choice) -> dict[str, Any]:
        text = self._echo(choice.index) + "".join(choice.text)
        logprobs = None
        if self.body.logprobs is not None:
            logprobs = completion_logprobs(self.engine.tokenizer, choice.tokens)
        return {
            "index": choice.index,
            "text": text,
            "logprobs": logprobs,
            "finish_reason": choice.finish_reason,
        }

    def chunk(self, choice: Choice, text: str, out_tokens: Any, finish: str | None) -> bytes:
        logprobs = None
        if self.body.logprobs is not None:
            logprobs = completion_logprobs(self.engine.tokenizer, out_tokens)
        entry = {"index": choice.index, "text": text, "logprobs": logprobs, "finish_reason": finish}
        return self._template.render(entry)

    def usage_chunk(self, choices: list[Choice]) -> bytes:
        payload = self._head() | {"choices": []}
        return sse_event(payload | {"usage": common.usage(choices, self.prompt_tokens)})


async def _stream(
    reply: _Reply,
    items: Prefetched,
    timer: Timer,
    request: Request,
    count: int,
) -> AsyncGenerator[bytes, None]:
    choices = [Choice(i) for i in range(count)]
    if reply.body.echo:
        for choice in choices:
            yield reply.chunk(choice, reply._echo(choice.index), (), None)
    try:
        async with contextlib.aclosing(items):
            async for index, out in items:
                timer.saw(out)
                choice = choices[index]
                choice.add(out)
                if out.new_tokens or out.finished:
                    finish = choice.finish_reason if out.finished else None
                    yield reply.chunk(choice, out.text, out.new_tokens, finish)
    except Exception as error:
        log.exception("stream %s failed", reply.rid)
        yield error_event(error, request)
        return
    timer.finish()
    if reply.body.include_usage():
        yield reply.usage_chunk(choices)
    yield DONE
    common.observe(request, reply.body.model, timer, choices, reply.prompt_tokens)
