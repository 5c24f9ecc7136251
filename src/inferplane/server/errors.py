"""OpenAI's error body for every failure, and the exception handlers that produce it.

Body: {"error": {"message", "type", "param", "code"}}. Routes raise `APIError`; validation
errors from FastAPI become 400 naming the field; anything unexpected becomes a 500 that says
so without leaking a traceback.
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from inferplane.errors import error_body

log = logging.getLogger(__name__)


class APIError(Exception):
    """An error the client should see, with its HTTP status and OpenAI fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = dict(headers or {})


def error_response(error: APIError) -> JSONResponse:
    body = error_body(error.status, error.message, error.param, error.code)
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def param_of(loc: Sequence[int | str]) -> str | None:
    """`("body", "messages", 0, "content", "str")` -> "messages[0].content"."""
    path = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.isidentifier() and not _is_type_tag(part):
            path += f".{part}" if path else part
        else:
            break  # union-member tags like "list[str]" are pydantic's, not the client's
    return path or None


def _is_type_tag(part: str) -> bool:
    return part in {"str", "int", "float", "bool", "list", "dict", "none"}


def _validation_message(error: Mapping[str, Any], param: str | None) -> str:
    if error.get("type") == "json_invalid":
        return "the request body is not valid JSON"
    if param is None:
        return "the request body must be a JSON object as the API reference describes"
    if error.get("type") == "missing":
        return f"missing required parameter: {param}"
    return f"invalid value for {param or 'the request body'}: {error.get('msg', 'invalid')}"


async def _on_api_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, APIError)  # registered for APIError only
    return error_response(error)


async def _on_validation(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0] if error.errors() else {}
    # an invalid body's loc is a character position, not a field
    param = None if first.get("type") == "json_invalid" else param_of(first.get("loc", ()))
    message = _validation_message(first, param)
    return error_response(APIError(400, message, param=param, code="invalid_value"))


async def _on_http(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    headers = dict(error.headers or {})
    return error_response(APIError(error.status_code, str(error.detail), headers=headers))


async def _on_unexpected(_: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=error)
    return error_response(APIError(500, "internal server error", code="internal_error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(APIError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
