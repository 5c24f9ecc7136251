"""Refusals: the gateway's decisions not to serve a request, as data the proxy turns into HTTP.

The decision layer (auth, limits, rules) never raises for a client's mistake; it returns a
Refusal carrying the status, OpenAI's error type and code, a message saying what to do, and
Retry-After where waiting helps.
"""

from dataclasses import dataclass
from typing import Any

from inferplane.errors import error_body


@dataclass(frozen=True)
class Refusal:
    status: int
    type: str
    code: str
    message: str
    param: str | None = None
    retry_after_s: int | None = None

    def body(self) -> dict[str, Any]:
        """OpenAI's error body: {"error": {"message", "type", "param", "code"}}."""
        return error_body(self.status, self.message, self.param, self.code, self.type)

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(self.retry_after_s)}


def unauthenticated(message: str) -> Refusal:
    return Refusal(401, "invalid_request_error", "invalid_api_key", message)


def forbidden(message: str, param: str | None = None) -> Refusal:
    return Refusal(403, "permission_error", "permission_denied", message, param)


def rate_limited(message: str, retry_after_s: int) -> Refusal:
    return Refusal(429, "rate_limit_error", "rate_limit_exceeded", message, None, retry_after_s)


def model_not_found(model: str, known: list[str]) -> Refusal:
    listed = ", ".join(sorted(known)) or "none"
    message = f"the model {model!r} does not exist here; models served: {listed}"
    return Refusal(404, "invalid_request_error", "model_not_found", message, "model")


def bad_request(message: str, param: str | None = None) -> Refusal:
    return Refusal(400, "invalid_request_error", "invalid_request", message, param)
