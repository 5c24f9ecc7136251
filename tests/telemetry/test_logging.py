import io
import json
import logging

from inferplane.telemetry.logging import JsonFormatter, configure_logging, request_scope


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_lines_carry_the_request_fields_bound_in_scope() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("inferplane.test.json")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with request_scope("req-1", model="chat-small", pool="primary"):
            logger.info("routed to %s", "r1", extra={"replica": "primary/a"})
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = _lines(stream)
    assert inside["message"] == "routed to r1"
    assert inside["request_id"] == "req-1"
    assert inside["model"] == "chat-small"
    assert inside["pool"] == "primary"
    assert inside["replica"] == "primary/a"
    assert inside["level"] == "info"
    assert str(inside["ts"]).endswith("Z")
    assert "request_id" not in outside


def test_exceptions_are_kept_in_one_line() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("inferplane.test.exc")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    (line,) = _lines(stream)
    assert "RuntimeError: boom" in str(line["exception"])


def test_configure_logging_replaces_root_handlers() -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure_logging(json=True, level="debug", stream=stream)
        configure_logging(json=True, level="debug", stream=stream)
        logging.getLogger("uvicorn.error").info("started")
    finally:
        root.handlers[:], root.level = saved, level
    (line,) = _lines(stream)
    assert line["logger"] == "uvicorn.error"
