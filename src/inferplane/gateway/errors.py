"""The gateway's errors: OpenAI's body {"error": {"message", "type", "param", "code"}} with the
status that says why, rendered once to bytes so the hot path never re-encodes them."""

from collections.abc import Mapping

import orjson

from inferplane.errors import error_body as openai_error_body


class GatewayError(Exception):
    """An error the client should see, with its HTTP status, OpenAI fields and headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        return error_body(self.status, self.message, self.param, self.code, self.kind)


def error_body(
    status: int,
    message: str,
    param: str | None = None,
    code: str | None = None,
    kind: str | None = None,
) -> bytes:
    return orjson.dumps(openai_error_body(status, message, param, code, kind))


def no_healthy_replica(pool: str) -> GatewayError:
    return GatewayError(
        503,
        f"No healthy replica in pool {pool!r}; retry shortly.",
        code="no_healthy_replica",
        headers={"retry-after": "1"},
    )


def upstream_timeout(what: str) -> GatewayError:
    return GatewayError(504, f"The upstream replica timed out ({what}).", code="upstream_timeout")


def upstream_failed(attempts: int, reason: str) -> GatewayError:
    return GatewayError(
        502,
        f"The upstream request failed after {attempts} attempt(s): {reason}.",
        code="upstream_failure",
    )
