"""The feedback book: bodies it takes and refuses, an abandoned stream, the regenerations the
ledger writer found counted for the metric and the pool, another key's request refused; the
memory bounded and out of the garbage collector's sight; abandoned streams reach the spool in
one batched write with the rows a FeedbackRecord gives, a client's feedback at once."""

import asyncio
import gc
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from inferplane.gateway.admission.auth import ApiKey, hash_key
from inferplane.gateway.books.feedback import (
    FLUSH_S,
    FeedbackBook,
    FeedbackRefused,
    Memory,
    feedback_spool,
    parse_feedback,
)
from inferplane.ledger.feedback import FEEDBACK_FIELDS, FeedbackRecord
from inferplane.ledger.spool import decode, segments
from inferplane.ledger.usage import hash_user

ALICE = ApiKey(name="alice", key_hash=hash_key("a-secret"), team="research")
BOB = ApiKey(name="bob", key_hash=hash_key("b-secret"), team="ops")


def _book() -> tuple[FeedbackBook, CollectorRegistry]:
    registry = CollectorRegistry()
    return FeedbackBook(registry, None, lambda: 1_000.0), registry


def _count(registry: CollectorRegistry, kind: str) -> float:
    labels = {"model": "chat", "model_version": "v1", "kind": kind, "negative": "true"}
    return registry.get_sample_value("inference_feedback_events_total", labels) or 0.0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"[]", None),
        (b'{"rating": 3}', "request_id"),
        (b'{"request_id": "r", "rating": 0}', "rating"),
        (b'{"request_id": "r", "rating": true}', "rating"),
        (b'{"request_id": "r", "thumbs": "sideways"}', "thumbs"),
        (b'{"request_id": "r"}', None),
        (b'{"request_id": "r", "rating": 3, "thumbs": "up"}', None),
    ],
)
def test_bad_bodies_are_400_with_the_field(body: bytes, param: str | None) -> None:
    with pytest.raises(FeedbackRefused) as refused:
        parse_feedback(body)
    assert refused.value.status == 400 and refused.value.param == param


def test_good_bodies() -> None:
    assert parse_feedback(b'{"request_id": "r", "rating": 4.5}') == ("r", "rating", 4.5, "")
    assert parse_feedback(b'{"request_id": "r", "thumbs": false, "text": "x"}')[1:] == (
        "thumbs",
        0.0,
        "x",
    )


def test_abandoned_streams_and_the_writers_regenerations_are_counted() -> None:
    book, registry = _book()
    told: list[tuple[str, int]] = []
    book.on_negative = lambda pool, count: told.append((pool, count))
    book.served("r1", ALICE, "u", "chat", "v1", abandoned=False)
    book.served("r2", ALICE, "u", "chat", "v1", abandoned=True, pool="main")
    book.regenerated("chat", "v1", "canary", 3)
    assert _count(registry, "abandoned") == 1 and _count(registry, "regeneration") == 3
    assert told == [("main", 1), ("canary", 3)]


def test_feedback_on_another_keys_request_is_403() -> None:
    book, registry = _book()
    book.served("r1", ALICE, None, "chat", "v1", abandoned=False)
    with pytest.raises(FeedbackRefused) as refused:
        book.submit(BOB, b'{"request_id": "r1", "thumbs": "down"}')
    assert refused.value.status == 403
    assert b'"stored":true' in book.submit(ALICE, b'{"request_id": "r1", "thumbs": "down"}')
    assert _count(registry, "thumbs") == 1


def _spooled(folder: Path) -> list[list[Any]]:
    """Each spool line's rows (one list per write), checking their columns."""
    lines = []
    for path in segments(folder):
        for line in path.read_bytes().splitlines():
            columns, rows = decode(line)
            assert columns == FEEDBACK_FIELDS
            lines.append(rows)
    return lines


def _spooled_book(folder: Path) -> FeedbackBook:
    spool = feedback_spool(folder, "w0")
    book = FeedbackBook(CollectorRegistry(), spool, lambda: 1_000.0, salt="s")
    book.open()
    return book


async def test_abandoned_streams_are_written_together_within_the_flush_interval(
    tmp_path: Path,
) -> None:
    book = _spooled_book(tmp_path)
    for index in range(3):
        book.served(f"r{index}", ALICE, "u", "chat", "v1", abandoned=index != 1)
    assert _spooled(tmp_path) == []  # nothing written on the request path
    await asyncio.sleep(FLUSH_S + 0.2)
    (rows,) = _spooled(tmp_path)
    assert [(row[2], row[3]) for row in rows] == [("r0", "abandoned"), ("r2", "abandoned")]
    record = FeedbackRecord(
        feedback_id=rows[0][0],
        time=1_000.0,
        request_id="r0",
        kind="abandoned",
        value=1.0,
        key="alice",
        team="research",
        user_hash=hash_user("u", "s"),
        model="chat",
        model_version="v1",
    )
    assert tuple(rows[0]) == record.to_row()
    assert len({row[0] for row in rows}) == 2  # ids are unique
    book.close()


async def test_a_clients_feedback_is_written_at_once_with_the_waiting_rows(
    tmp_path: Path,
) -> None:
    book = _spooled_book(tmp_path)
    book.served("r1", ALICE, "u", "chat", "v1", abandoned=True)
    book.submit(ALICE, b'{"request_id": "r1", "rating": 1}')
    (rows,) = _spooled(tmp_path)
    assert [row[3] for row in rows] == ["abandoned", "rating"]
    book.close()
    assert len(_spooled(tmp_path)) == 1  # nothing left over to write at close


def test_without_an_event_loop_events_are_written_at_once(tmp_path: Path) -> None:
    book = _spooled_book(tmp_path)
    book.served("r1", ALICE, None, "chat", "v1", abandoned=True)
    assert [row[3] for rows in _spooled(tmp_path) for row in rows] == ["abandoned"]
    book.close()


async def test_close_writes_what_is_waiting(tmp_path: Path) -> None:
    book = _spooled_book(tmp_path)
    book.served("r1", ALICE, None, "chat", "v1", abandoned=True)
    book.close()
    assert [row[3] for rows in _spooled(tmp_path) for row in rows] == ["abandoned"]


async def test_a_clients_row_names_the_version_and_keeps_the_note(tmp_path: Path) -> None:
    book = _spooled_book(tmp_path)
    user = "odd\x1fuser"  # the separator the memory joins fields with, in the one free field
    book.served("r1", ALICE, user, "chat", "v1", abandoned=False, pool="canary")
    book.submit(ALICE, b'{"request_id": "r1", "rating": 2, "text": "too long"}')
    (rows,) = _spooled(tmp_path)
    row = dict(zip(FEEDBACK_FIELDS, rows[0], strict=True))
    assert (row["model"], row["model_version"], row["text"]) == ("chat", "v1", "too long")
    assert (row["key"], row["team"], row["user_hash"]) == (
        "alice",
        "research",
        hash_user(user, "s"),
    )
    book.close()


def test_the_memory_is_bounded_and_never_tracked_by_the_garbage_collector() -> None:
    memory = Memory(100)
    for index in range(1_000):
        memory.put(f"i{index}", f"r{index}")
        memory.put(f"r{index}", "fields")
    assert memory.get("i999") == "r999" and memory.get("r950") == "fields"
    assert memory.get("i0") is None  # long gone: at most 2 x 100 entries are kept
    assert len(memory._young) + len(memory._old) <= 200
    assert not gc.is_tracked(memory._young) and not gc.is_tracked(memory._old)
    memory.put("i999", "newer")  # the young generation's entry wins over the old one's
    assert memory.get("i999") == "newer"


def test_feedback_on_a_forgotten_request_is_stored_with_the_id_alone(tmp_path: Path) -> None:
    book = _spooled_book(tmp_path)
    book.served("old", ALICE, "u", "chat", "v1", abandoned=False)
    for index in range(book.recent.size * 2):
        book.served(f"r{index}", ALICE, "u", "chat", "v1", abandoned=False)
    book.submit(BOB, b'{"request_id": "old", "thumbs": "up"}')  # not refused: not known now
    rows = [row for rows in _spooled(tmp_path) for row in rows]
    assert [(row[2], row[5], row[8]) for row in rows] == [("old", "bob", "")]
    book.close()
