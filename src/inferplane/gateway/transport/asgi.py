"""The few ASGI shapes the gateway uses, and small helpers to answer with bytes."""

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from inferplane.gateway.errors import GatewayError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
JSON = b"application/json"


class ClientGone(Exception):
    """The client hung up before its request body arrived."""


async def respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    extra: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def respond_error(send: Send, error: GatewayError, route: bytes | None = None) -> None:
    extra = [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    if route is not None:
        extra.append((b"x-inferplane-route", route))
    await respond(send, error.status, error.body(), extra=extra)


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, or GatewayError 413 as soon as it passes `limit` bytes."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False) and len(body) <= limit:
        return body  # the usual case: one message
    parts, size = [body], len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        parts.append(message.get("body", b""))
        size += len(parts[-1])
        if size > limit:
            break
    if size > limit:
        raise GatewayError(
            413, f"The request body exceeds {limit} bytes.", code="request_too_large"
        )
    return b"".join(parts)
