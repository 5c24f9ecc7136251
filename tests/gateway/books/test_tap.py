from typing import Any

import orjson

from inferplane.gateway.books.tap import ResponseTap, Usage, usage_of

USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}}


async def _through(messages: list[dict[str, Any]]) -> tuple[ResponseTap, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    tap = ResponseTap(send, b"r1")
    for message in messages:
        await tap.send(message)
    return tap, sent


def _start(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http.response.start", "status": 200, "headers": list(headers)}


def _body(data: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


async def test_a_whole_answer_gives_its_usage_and_model_version() -> None:
    body = orjson.dumps({"choices": [], "usage": USAGE})
    tap, sent = await _through([_start((b"x-model-version", b"v7")), _body(body)])
    assert (b"x-request-id", b"r1") in sent[0]["headers"]
    assert sent[1]["body"] == body
    echoed, _ = await _through([_start((b"x-request-id", b"r1")), _body(body)])
    assert [v for k, v in echoed.extra] == []
    assert tap.model_version == "v7"
    assert usage_of(tap, stream=False, est_prompt_tokens=99) == Usage(12, 3, 4)


async def test_a_stream_with_include_usage_gives_the_final_usage() -> None:
    chunks = [b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n'] * 5
    chunks.append(b"data: " + orjson.dumps({"choices": [], "usage": USAGE}) + b"\n\n")
    chunks.append(b"data: [DONE]\n\n")
    tap, _ = await _through([_start(), *(_body(c, more=True) for c in chunks), _body(b"")])
    assert usage_of(tap, stream=True, est_prompt_tokens=99) == Usage(12, 3, 4)


async def test_a_stream_without_usage_is_estimated_from_its_events() -> None:
    chunks = [b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n'] * 6 + [b"data: [DONE]\n\n"]
    tap, _ = await _through([_start(), *(_body(c, more=True) for c in chunks), _body(b"")])
    assert usage_of(tap, stream=True, est_prompt_tokens=20) == Usage(20, 6, 0, estimated=True)


async def test_a_body_that_is_not_json_has_no_usage() -> None:
    tap, _ = await _through([_start(), _body(b"oops")])
    assert usage_of(tap, stream=False, est_prompt_tokens=1) is None
