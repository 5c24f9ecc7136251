"""POST /v1/chat/completions: messages through the model's chat template, then generation."""

import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from inferplane.engine.core.outputs import RequestOutput
from inferplane.engine.core.protocol import EngineClient
from inferplane.server import common
from inferplane.server.common import Prefetched, Timer
from inferplane.server.errors import APIError
from inferplane.server.generation import Choice, Job, resolve_max_tokens, run_jobs, sampling_params
from inferplane.server.logprobs import chat_logprobs
from inferplane.server.protocol import ChatCompletionRequest
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


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    state = common.server_state(request)
    engine = state.generation_engine(body.model)
    request.state.model_label = body.model
    prompt_ids = _prompt_ids(engine, body)
    rid = common.new_id("chatcmpl")
    jobs = _jobs(engine, body, prompt_ids, rid)
    timer = Timer.started(state.clock)
    items = await Prefetched(run_jobs(engine, jobs)).start(timer)
    reply = _Reply(engine, body, rid, int(state.wall_clock()), len(prompt_ids))
    if body.stream:
        headers = common.response_headers(request, rid, timer) | SSE_HEADERS
        events = _stream(reply, items, timer, request)
        return EventStream(events, headers)
    choices = [Choice(job.index) for job in jobs]
    await common.collect(request, items, choices, timer)
    common.observe(request, body.model, timer, choices, len(prompt_ids))
    headers = common.response_headers(request, rid, timer)
    return JSONResponse(reply.complete(choices), headers=headers)


def _prompt_ids(engine: EngineClient, body: ChatCompletionRequest) -> list[int]:
    messages = [{"role": m.role, "content": m.text()} for m in body.messages]
    try:
        return engine.tokenizer.encode_chat(messages)
    except ValueError as error:  # a template that rejects these messages: the client's 400
        raise APIError(
            400,
            f"the chat template rejected the messages: {error}",
            param="messages",
            code="invalid_value",
        ) from error


def _jobs(
    engine: EngineClient, body: ChatCompletionRequest, prompt_ids: list[int], rid: str
) -> list[Job]:
    if body.top_logprobs is not None and not body.logprobs:
        raise APIError(
            400,
            "top_logprobs needs logprobs set to true",
            param="top_logprobs",
            code="invalid_value",
        )
    max_tokens = resolve_max_tokens(engine, len(prompt_ids), body.token_limit(), None, "messages")
    logprobs = (body.top_logprobs or 0) if body.logprobs else None
    return [
        Job(i, f"{rid}-{i}", prompt_ids, sampling_params(body, max_tokens, logprobs, i))
        for i in range(body.n)
    ]


class _Reply:
    """Builds the response objects of one chat request."""

    def __init__(
        self,
        engine: EngineClient,
        body: ChatCompletionRequest,
        rid: str,
        created: int,
        prompt_tokens: int,
    ) -> None:
        self.engine, self.body, self.rid = engine, body, rid
        self.created, self.prompt_tokens = created, prompt_tokens
        self._template = ChunkTemplate(self._head("chat.completion.chunk"), body.include_usage())

    def _head(self, obj: str) -> dict[str, Any]:
        return {
            "id": self.rid,
            "object": obj,
            "created": self.created,
            "model": self.body.model,
            "system_fingerprint": None,
        }

    def complete(self, choices: list[Choice]) -> dict[str, Any]:
        return self._head("chat.completion") | {
            "choices": [self._choice(c) for c in choices],
            "usage": common.usage(choices, self.prompt_tokens),
        }

    def _choice(self, choice: Choice) -> dict[str, Any]:
        message = {"role": "assistant", "content": "".join(choice.text), "refusal": None}
        return {
            "index": choice.index,
            "message": message,
            "logprobs": self._logprobs(choice),
            "finish_reason": choice.finish_reason,
        }

    def _logprobs(self, choice: Choice) -> dict[str, Any] | None:
        if not self.body.logprobs:
            return None
        return chat_logprobs(self.engine.tokenizer, choice.tokens)

    def logprobs(self, out: RequestOutput) -> dict[str, Any] | None:
        return chat_logprobs(self.engine.tokenizer, out.new_tokens) if self.body.logprobs else None

    def chunk(
        self,
        index: int,
        delta: dict[str, Any],
        finish: str | None,
        logprobs: dict[str, Any] | None = None,
    ) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return self._template.render(choice)

    def usage_chunk(self, choices: list[Choice]) -> bytes:
        payload = self._head("chat.completion.chunk") | {"choices": []}
        return sse_event(payload | {"usage": common.usage(choices, self.prompt_tokens)})


async def _stream(
    reply: _Reply, items: Prefetched, timer: Timer, request: Request
) -> AsyncGenerator[bytes, None]:
    choices = [Choice(i) for i in range(reply.body.n)]
    for choice in choices:
        yield reply.chunk(choice.index, {"role": "assistant", "content": ""}, None)
    try:
        async with contextlib.aclosing(items):
            async for index, out in items:
                timer.saw(out)
                choice = choices[index]
                choice.add(out)
                if out.new_tokens:
                    yield reply.chunk(index, {"content": out.text}, None, reply.logprobs(out))
                if out.finished:
                    yield reply.chunk(index, {}, choice.finish_reason)
    except Exception as error:
        log.exception("stream %s failed", reply.rid)
        yield error_event(error, request)
        return
    timer.finish()
    if reply.body.include_usage():
        yield reply.usage_chunk(choices)
    yield DONE
    common.observe(request, reply.body.model, timer, choices, reply.prompt_tokens)
