"""What routing needs from a request body, parsed once: the body itself is forwarded as it
came, so nothing here re-encodes it."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from inferplane.gateway.errors import GatewayError
from inferplane.gateway.transport.prefix import chat_prefix_hashes, prefix_hashes
from inferplane.gateway.types import RequestTask

DEADLINE_HEADER = "x-inferplane-deadline-ms"  # the client's latency SLA, for SLA rules
BYTES_PER_TOKEN = 4  # a rough estimate; exact counts are the replica's business


@dataclass(frozen=True)
class ParsedRequest:
    task: RequestTask
    model: str
    stream: bool
    user: str | None
    max_tokens: int
    est_prompt_tokens: int
    prefix_hashes: tuple[int, ...]
    deadline_ms: int | None
    headers: Mapping[str, str]


def bad_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code="invalid_request")


def parse_request(
    body: bytes, task: RequestTask, headers: Mapping[str, str], with_prefix: bool
) -> ParsedRequest:
    """Raise GatewayError 400 for a body that is not a JSON object naming a model."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise bad_request(f"The request body is not valid JSON: {error}.") from error
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("The request needs a `model` (a string).", param="model")
    return ParsedRequest(
        task=task,
        model=model,
        stream=data.get("stream") is True,
        user=_string(data.get("user")),
        max_tokens=_max_tokens(data),
        est_prompt_tokens=len(body) // BYTES_PER_TOKEN,
        prefix_hashes=_prefix(data, task) if with_prefix else (),
        deadline_ms=_deadline(headers),
        headers=headers,
    )


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _max_tokens(data: dict[str, Any]) -> int:
    value = data.get("max_tokens", data.get("max_completion_tokens"))
    return value if isinstance(value, int) and value > 0 else 0


def _prefix(data: dict[str, Any], task: RequestTask) -> tuple[int, ...]:
    if task == "chat":
        messages = data.get("messages")
        if isinstance(messages, list):
            return chat_prefix_hashes([m for m in messages if isinstance(m, dict)])
        return ()
    prompt = data.get("prompt")
    return prefix_hashes(prompt) if isinstance(prompt, str) else ()


def _deadline(headers: Mapping[str, str]) -> int | None:
    value = headers.get(DEADLINE_HEADER)
    if value is None or not value.isdigit():
        return None
    return int(value)
