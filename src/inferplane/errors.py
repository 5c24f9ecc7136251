"""OpenAI's error vocabulary, shared by every HTTP front (model server and gateway).

Body: {"error": {"message", "type", "param", "code"}}; the type follows the HTTP status.
"""

from typing import Any

ERROR_TYPES = {
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


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_body(
    status: int,
    message: str,
    param: str | None = None,
    code: str | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """OpenAI's error body; `kind` overrides the type the status implies."""
    error = {"message": message, "type": kind or error_type(status), "param": param}
    return {"error": {**error, "code": code}}
