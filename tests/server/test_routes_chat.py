import json
from pathlib import Path

import httpx
import pytest

from inferplane.engine.front.async_engine import AsyncLLMEngine
from inferplane.server.app import create_app
from inferplane.server.state import ServerSettings, ServerState
from tests.server.conftest import tiny_engine

HELLO = [{"role": "user", "content": "hello there"}]
_TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
_IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}


def _events(text: str) -> list[dict[str, object]]:
    lines = [line for line in text.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


async def test_chat_completion_has_openai_shape(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={"model": "tiny", "messages": HELLO, "max_tokens": 4, "ignore_eos": True},
    )
    body = response.json()
    assert response.status_code == 200
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "length"
    usage = body["usage"]
    assert usage["completion_tokens"] == 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + 4
    assert response.headers["x-model-version"] == "v7"
    assert float(response.headers["x-inference-time-ms"]) > 0


async def test_n_choices_and_logprobs(client: httpx.AsyncClient) -> None:
    body = {
        "model": "tiny",
        "messages": HELLO,
        "max_tokens": 3,
        "n": 3,
        "logprobs": True,
        "top_logprobs": 2,
    }
    choices = (await client.post("/v1/chat/completions", json=body)).json()["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2]
    content = choices[0]["logprobs"]["content"]
    assert len(content) == 3
    assert {"token", "logprob", "bytes", "top_logprobs"} <= set(content[0])


async def test_top_logprobs_needs_logprobs(client: httpx.AsyncClient) -> None:
    body = {"model": "tiny", "messages": HELLO, "top_logprobs": 2}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "top_logprobs"


async def test_streaming_with_usage(client: httpx.AsyncClient) -> None:
    body = {
        "model": "tiny",
        "messages": HELLO,
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = await client.post("/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}  # type: ignore[index]
    text = "".join(
        e["choices"][0]["delta"].get("content", "")  # type: ignore[index]
        for e in events
        if e["choices"]
    )
    finishes = [e["choices"][0]["finish_reason"] for e in events if e["choices"]]  # type: ignore[index]
    assert text
    assert finishes[-1] == "length"
    assert events[-1]["choices"] == []
    assert events[-1]["usage"]["completion_tokens"] == 5  # type: ignore[index]
    assert all(e["usage"] is None for e in events[:-1])
    assert len({e["id"] for e in events}) == 1


async def test_unknown_model_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json={"model": "gpt-9", "messages": HELLO})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


async def test_context_length_exceeded(client: httpx.AsyncClient, engine: AsyncLLMEngine) -> None:
    messages = [{"role": "user", "content": "word " * engine.max_model_len}]
    response = await client.post(
        "/v1/chat/completions", json={"model": "tiny", "messages": messages}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"


async def test_queue_full_is_429_with_retry_after(tiny_model_dir: Path) -> None:
    engine = tiny_engine(tiny_model_dir, max_waiting=0)
    state = ServerState(ServerSettings(model_name="tiny"), engine=engine)
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
        response = await client.post(
            "/v1/chat/completions", json={"model": "tiny", "messages": HELLO}
        )
    await engine.shutdown()
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize(
    ("extra", "param", "says"),
    [
        ({"response_format": {"type": "json_object"}}, "response_format.type", "JSON"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format.type",
            "'json_schema' is not supported",
        ),
        ({"tools": [_TOOL], "tool_choice": "auto"}, "tool_choice", "tool calling"),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice", "tool"),
        (
            {"messages": [{"role": "user", "content": [_IMAGE]}]},
            "messages[0].content",
            "not 'image_url' parts",
        ),
    ],
)
async def test_what_the_server_cannot_do_is_refused_not_ignored(
    client: httpx.AsyncClient, extra: dict[str, object], param: str, says: str
) -> None:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    response = await client.post("/v1/chat/completions", json={**body, **extra})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and says in error["message"]
    assert error["type"] == "invalid_request_error"


async def test_plain_text_format_and_unused_tools_are_served(client: httpx.AsyncClient) -> None:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    for extra in (
        {"response_format": {"type": "text"}},
        {"tools": [_TOOL]},  # as vLLM does without a tool parser: no tool_choice, no calls
        {"tools": [_TOOL], "tool_choice": "none"},
    ):
        response = await client.post("/v1/chat/completions", json={**body, **extra})
        assert response.status_code == 200, response.text
