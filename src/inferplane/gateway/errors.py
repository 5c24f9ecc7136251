"""The gateway's errors: OpenAI's body {"error": {"message", "type", "param", "code"}} with the
status that says why, rendered once to bytes so the hot path never re-encodes them."""

from collections.abc import Mapping

import orjson

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


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
    if kind is None:
        kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


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
