"""The feedback book: bodies it takes and refuses, regenerations inside the window only, an
abandoned stream, another key's request refused."""

import pytest
from prometheus_client import CollectorRegistry

from inferplane.gateway.admission.auth import ApiKey, hash_key
from inferplane.gateway.books.feedback import (
    REGENERATION_WINDOW_S,
    FeedbackBook,
    FeedbackRefused,
    parse_feedback,
)

ALICE = ApiKey(name="alice", key_hash=hash_key("a-secret"), team="research")
BOB = ApiKey(name="bob", key_hash=hash_key("b-secret"), team="ops")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _book(clock: Clock) -> tuple[FeedbackBook, CollectorRegistry]:
    registry = CollectorRegistry()
    return FeedbackBook(registry, None, clock, lambda: 1_000.0 + clock.now), registry


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


def test_regenerations_within_the_window_and_abandoned_streams_are_counted() -> None:
    clock = Clock()
    book, registry = _book(clock)
    book.served("r1", ALICE, "u", "chat", "v1", prompt_key=7, abandoned=False)
    clock.now = 10.0
    book.served("r2", ALICE, "u", "chat", "v1", prompt_key=7, abandoned=True)
    assert _count(registry, "regeneration") == 1 and _count(registry, "abandoned") == 1
    book.served("r3", BOB, "u", "chat", "v1", prompt_key=7, abandoned=False)  # another key
    book.served("r4", ALICE, "other", "chat", "v1", prompt_key=7, abandoned=False)  # user
    clock.now = 10.0 + REGENERATION_WINDOW_S + 1
    book.served("r5", ALICE, "u", "chat", "v1", prompt_key=7, abandoned=False)  # too late
    assert _count(registry, "regeneration") == 1


def test_feedback_on_another_keys_request_is_403() -> None:
    book, registry = _book(Clock())
    book.served("r1", ALICE, None, "chat", "v1", prompt_key=1, abandoned=False)
    with pytest.raises(FeedbackRefused) as refused:
        book.submit(BOB, b'{"request_id": "r1", "thumbs": "down"}')
    assert refused.value.status == 403
    assert b'"stored":true' in book.submit(ALICE, b'{"request_id": "r1", "thumbs": "down"}')
    assert _count(registry, "thumbs") == 1
