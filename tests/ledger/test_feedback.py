"""Feedback records in the store: their own table beside usage, idempotent by feedback id,
through write_rows as the spool carries them."""

from pathlib import Path

from inferplane.ledger.feedback import FEEDBACK_FIELDS, FeedbackRecord
from inferplane.ledger.store import UsageStore


def _record(feedback_id: str, kind: str = "rating", value: float = 2.0) -> FeedbackRecord:
    return FeedbackRecord(feedback_id, 5.0, "r1", kind, value, "alice", model="chat")  # type: ignore[arg-type]


def test_feedback_is_stored_once_beside_usage(tmp_path: Path) -> None:
    with UsageStore(f"sqlite:///{tmp_path / 'l.db'}") as store:
        store.write_feedback([_record("f1"), _record("f1")])
        store.write_rows(FEEDBACK_FIELDS, [list(_record("f2", "thumbs", 1.0).to_row())])
        rows = store.feedback()
        assert [r.feedback_id for r in rows] == ["f1", "f2"]
        assert rows[0] == _record("f1") and rows[0].negative and not rows[1].negative
        assert store.count() == 0  # no usage row came of it
