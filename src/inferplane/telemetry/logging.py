"""Structured JSON logs: one object per line, carrying the request id, model and pool of the
request being served, so one grep finds a request across the gateway and its replica.

The request fields live in a ContextVar (one value per asyncio task, not shared state): the
code that accepts a request binds them with `request_scope(...)` and every log line written
inside carries them. Standard library only.
"""

import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import IO, Any


@dataclass(frozen=True)
class RequestContext:
    request_id: str | None = None
    model: str | None = None
    pool: str | None = None


NO_REQUEST = RequestContext()
_CONTEXT: ContextVar[RequestContext | None] = ContextVar("inferplane_request", default=None)
# Attributes every LogRecord has; anything else was passed through `extra=` and is kept.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def current_request() -> RequestContext:
    return _CONTEXT.get() or NO_REQUEST


@contextlib.contextmanager
def request_scope(
    request_id: str | None, model: str | None = None, pool: str | None = None
) -> Iterator[RequestContext]:
    """Bind a request's fields to every log line written inside (this task only)."""
    context = RequestContext(request_id, model, pool)
    token = _CONTEXT.set(context)
    try:
        yield context
    finally:
        _CONTEXT.reset(token)


class JsonFormatter(logging.Formatter):
    """A LogRecord as one JSON object: time, level, logger, message, request fields, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in asdict(current_request()).items() if v is not None})
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _timestamp(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def configure_logging(
    json: bool = True, level: str | int = "INFO", stream: IO[str] | None = None
) -> logging.Handler:
    """Send the root logger (and uvicorn's) to `stream` as JSON lines or plain text.

    Replaces the root logger's handlers, so calling it twice does not double the lines.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        # uvicorn's own config may have set a level or disabled these; the root decides now
        logger.handlers[:] = []
        logger.propagate = True
        logger.disabled = False
        logger.setLevel(logging.NOTSET)
    return handler
