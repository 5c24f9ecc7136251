"""Feedback records: what users said about an answer (a rating, a thumb, a note) and what they
did (regenerated it, left the stream before its end), one row per event in the ledger's store
beside the usage records.

A row names the request it is about; its model and version are those that served the request
(the gateway fills them in when it still remembers the request, and reports join the usage
table otherwise). Only feedback given with the key that made the request counts in reports.
"""

from dataclasses import dataclass, fields
from typing import Any, Literal

from sqlalchemy import Column, Double, Index, MetaData, String, Table

FeedbackKind = Literal["rating", "thumbs", "regeneration", "abandoned"]
KINDS: tuple[FeedbackKind, ...] = ("rating", "thumbs", "regeneration", "abandoned")
MAX_TEXT = 2000  # characters of a note kept; the rest is cut
NEGATIVE_RATING = 2.0  # ratings 1..5: 2 or less is a poor answer


@dataclass(frozen=True)
class FeedbackRecord:
    """One feedback event; `value` is the rating (1..5), the thumb (1 up, 0 down), or 1 for
    an automatic event (a regeneration or an abandoned stream)."""

    feedback_id: str  # unique: writing the same id twice stores it once
    time: float  # Unix seconds
    request_id: str
    kind: FeedbackKind
    value: float
    key: str = ""
    team: str = ""
    user_hash: str = ""
    model: str = ""
    model_version: str = ""
    text: str = ""

    @property
    def negative(self) -> bool:
        """Whether the event says the answer was poor."""
        if self.kind == "rating":
            return self.value <= NEGATIVE_RATING
        if self.kind == "thumbs":
            return self.value < 1
        return True  # regenerating an answer, or leaving it, rejects it

    def to_row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in FEEDBACK_FIELDS)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FeedbackRecord":
        return cls(**{name: data[name] for name in FEEDBACK_FIELDS if name in data})


FEEDBACK_FIELDS = tuple(f.name for f in fields(FeedbackRecord))


def feedback_table(metadata: MetaData) -> Table:
    return Table(
        "feedback",
        metadata,
        Column("feedback_id", String(240), primary_key=True),
        Column("time", Double, nullable=False),
        Column("request_id", String(200), nullable=False),
        Column("kind", String(16), nullable=False),
        Column("value", Double, nullable=False),
        Column("key", String(200), nullable=False),
        Column("team", String(200), nullable=False),
        Column("user_hash", String(64), nullable=False),
        Column("model", String(200), nullable=False),
        Column("model_version", String(100), nullable=False),
        Column("text", String(MAX_TEXT), nullable=False),
        Index("ix_feedback_request", "request_id"),
        Index("ix_feedback_time", "time"),
    )
