import json

from fastapi import Request

from inferplane.server.streaming import DONE, ChunkTemplate, sse_event


def test_sse_framing() -> None:
    assert sse_event({"a": "é"}) == 'data: {"a":"é"}\n\n'.encode()
    assert DONE == b"data: [DONE]\n\n"


def test_template_matches_a_full_encoding() -> None:
    head = {"id": "cmpl-1", "object": "text_completion", "created": 5, "model": "m"}
    choice = {"index": 0, "text": 'a "quoted" é', "finish_reason": None}
    for include_usage in (False, True):
        rendered = ChunkTemplate(head, include_usage).render(choice)
        expected = head | {"choices": [choice]}
        if include_usage:
            expected["usage"] = None
        assert rendered.startswith(b"data: ")
        assert rendered.endswith(b"\n\n")
        assert json.loads(rendered[6:]) == expected


def test_error_event_carries_the_openai_body_and_records_its_status() -> None:
    from inferplane.server.errors import APIError  # noqa: PLC0415
    from inferplane.server.streaming import STREAM_STATUS, error_event  # noqa: PLC0415

    told_request, hidden_request = _request(), _request()
    told = error_event(APIError(429, "busy", code="queue_full"), told_request)
    hidden = error_event(RuntimeError("secret detail"), hidden_request)
    assert json.loads(told.split(b"\n\n")[0][6:])["error"]["code"] == "queue_full"
    assert b"secret" not in hidden
    assert hidden.endswith(DONE)
    assert told_request.scope["state"][STREAM_STATUS] == 429
    assert hidden_request.scope["state"][STREAM_STATUS] == 500


def _request() -> Request:
    return Request({"type": "http", "method": "POST", "path": "/v1/completions", "headers": []})
