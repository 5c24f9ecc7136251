import pytest

from inferplane.gateway.errors import GatewayError
from inferplane.gateway.transport.request import parse_request


def test_only_what_routing_needs_is_read() -> None:
    body = (
        b'{"model": "chat", "stream": true, "user": "u1", "max_completion_tokens": 7,'
        b' "messages": [{"role": "user", "content": "' + b"x" * 200 + b'"}]}'
    )
    headers = {"x-inferplane-deadline-ms": "150"}
    parsed = parse_request(body, "chat", headers, with_prefix=True)
    assert (parsed.model, parsed.stream, parsed.user, parsed.max_tokens) == ("chat", True, "u1", 7)
    assert parsed.deadline_ms == 150 and parsed.est_prompt_tokens == len(body) // 4
    assert len(parsed.prefix_hashes) >= 3
    plain = parse_request(
        b'{"model": "m", "prompt": "p", "stream": "yes"}', "completion", {}, False
    )
    assert (plain.stream, plain.prefix_hashes, plain.deadline_ms) == (False, (), None)


@pytest.mark.parametrize("body", [b"", b"{", b'"s"', b'{"model": 3}', b'{"model": ""}'])
def test_bad_bodies_are_400(body: bytes) -> None:
    with pytest.raises(GatewayError) as caught:
        parse_request(body, "chat", {}, with_prefix=False)
    assert caught.value.status == 400
