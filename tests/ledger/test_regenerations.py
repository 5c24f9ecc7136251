"""Regenerations among usage rows: the same key, user and body within the window, in either
order of reading; another key, user or body, a row read twice, an idle row or one too late is
not one; events about the earlier request, with ids that name both; the memory forgets what is
past the window."""

from typing import Any

from inferplane.ledger.feedback import FEEDBACK_FIELDS, FeedbackRecord
from inferplane.ledger.regenerations import (
    REGENERATION_WINDOW_S,
    RegenerationFinder,
    prompt_digest,
)
from inferplane.ledger.usage import ROW_FIELDS
from tests.ledger.conftest import RecordFactory

BODY = prompt_digest(b'{"messages": [{"role": "user", "content": "hi"}]}')


def _row(make_record: RecordFactory, request_id: str, time: float, **changes: Any) -> Any:
    fields = {"prompt_hash": BODY, "user_hash": "u1", "time": time, **changes}
    return make_record(request_id, **fields).to_row()


def _ids(finder: RegenerationFinder, rows: list[Any]) -> list[str]:
    return [event.row[0] for event in finder.find(ROW_FIELDS, rows)]


def test_the_digest_is_stable_and_tells_bodies_apart() -> None:
    assert prompt_digest(b"abc") == prompt_digest(b"a" + b"bc") == 0x352441C2 << 31 | 3
    assert prompt_digest(b"\xff" * 1000) < 2**63  # a signed 64-bit column holds it
    assert prompt_digest(b"abc") != prompt_digest(b"abd")


def test_the_same_body_again_within_the_window_regenerates_the_earlier_answer(
    make_record: RecordFactory,
) -> None:
    finder = RegenerationFinder()
    rows = [_row(make_record, f"r{i}", 100.0 + 10 * i) for i in range(3)]
    found = finder.find(ROW_FIELDS, rows)
    assert [event.row[0] for event in found] == ["r0:regeneration:r1", "r1:regeneration:r2"]
    record = FeedbackRecord(**dict(zip(FEEDBACK_FIELDS, found[0].row, strict=True)))
    assert (record.request_id, record.kind, record.time, record.negative) == (
        "r0", "regeneration", 110.0, True,
    )  # fmt: skip
    assert (record.key, record.team, record.user_hash, record.model) == (
        "key-a", "ml", "u1", "chat-small",
    )  # fmt: skip
    assert found[0].pool == "chat-primary"


def test_other_keys_users_bodies_idle_rows_and_late_ones_are_not(
    make_record: RecordFactory,
) -> None:
    finder = RegenerationFinder()
    rows = [
        _row(make_record, "r0", 100.0),
        _row(make_record, "key", 101.0, key="key-b"),
        _row(make_record, "user", 102.0, user_hash="u2"),
        _row(make_record, "body", 103.0, prompt_hash=prompt_digest(b"other")),
        _row(make_record, "idle", 104.0, kind="idle"),
        _row(make_record, "none", 105.0, prompt_hash=None),
        _row(make_record, "late", 100.0 + REGENERATION_WINDOW_S + 1),
    ]
    assert _ids(finder, rows) == []


def test_rows_read_out_of_order_regenerate_the_one_that_came_first(
    make_record: RecordFactory,
) -> None:
    finder = RegenerationFinder()  # worker 1's segment is read before worker 0's
    assert _ids(finder, [_row(make_record, "later", 150.0)]) == []
    assert _ids(finder, [_row(make_record, "first", 100.0)]) == ["first:regeneration:later"]


def test_a_row_read_twice_is_no_regeneration_of_itself(make_record: RecordFactory) -> None:
    finder = RegenerationFinder()
    rows = [_row(make_record, "r0", 100.0), _row(make_record, "r1", 110.0)]
    assert _ids(finder, rows) == ["r0:regeneration:r1"]
    # read again after a failed write: the same event (its id stores once), nothing new
    assert _ids(finder, rows) == ["r0:regeneration:r1"]


def test_rows_without_a_digest_column_are_skipped() -> None:
    finder = RegenerationFinder()
    assert finder.find(FEEDBACK_FIELDS, [("f", 1.0, "r", "rating", 1.0)]) == []


def test_what_is_past_the_window_is_forgotten(make_record: RecordFactory) -> None:
    finder = RegenerationFinder()
    rows = [
        _row(make_record, f"r{i}", 10.0 * i, prompt_hash=prompt_digest(b"%d" % i))
        for i in range(100)
    ]
    finder.find(ROW_FIELDS, rows)
    assert len(finder) == REGENERATION_WINDOW_S / 10 + 1  # the last 300 s of 990


def test_at_most_the_remembered_number_is_kept_the_oldest_going_first(
    make_record: RecordFactory,
) -> None:
    finder = RegenerationFinder(remembered=10)
    rows = [
        _row(make_record, f"r{i}", float(i), prompt_hash=prompt_digest(b"%d" % i))
        for i in range(30)
    ]
    finder.find(ROW_FIELDS, rows)
    assert len(finder) == 10
    again = [_row(make_record, "new", 40.0, prompt_hash=prompt_digest(b"%d" % 25))]
    assert _ids(finder, again) == ["r25:regeneration:new"]  # a recent one is still known
    old = [_row(make_record, "new2", 41.0, prompt_hash=prompt_digest(b"%d" % 3))]
    assert _ids(finder, old) == []  # an old one was let go
