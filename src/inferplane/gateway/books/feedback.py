"""The gateway's feedback book: `POST /v1/feedback` (a rating 1..5 or a thumb, an optional
note, about a request id), and the feedback users give without saying it: an abandoned stream
(the client gone before the end) and a regeneration (the same prompt sent again soon by the
same key and user). Each event becomes a FeedbackRecord on the spool (the ledger writer stores
it beside the usage records) and a count per model and version.

The book remembers the last requests it served (bounded), so feedback names the model version
that answered; feedback about a request another worker served is stored with the request id
alone and reports join it to the usage record.

Regenerations are not looked for here: the ledger writer finds them among the usage records
of every worker (ledger/regenerations.py), so a retry that reaches another worker counts too
and the request path remembers no prompts. The writer's totals come back through the spool
folder (ledger/regeneration_counts.py) and `regenerated` counts them here, for the metric and
the rollout gates.

An abandoned stream costs a counter increment and a tuple on the request path: its row reaches
the spool in one write within FLUSH_S (as the accountant's usage records do), and a feedback a
client sent is written at once, with any rows waiting.
"""

import asyncio
import secrets
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
from prometheus_client import CollectorRegistry

from inferplane.gateway.admission.auth import ApiKey
from inferplane.ledger.feedback import FEEDBACK_FIELDS, MAX_TEXT, FeedbackKind, FeedbackRecord
from inferplane.ledger.spool import SpoolAppender
from inferplane.ledger.usage import hash_user
from inferplane.telemetry import names

Clock = Callable[[], float]
REMEMBERED = 20_000  # requests kept for feedback look-ups
_SEP = "\x1f"  # joins a served request's fields into the one string the memory keeps
FLUSH_S = 0.5  # automatic events wait at most this long for their spool write


class FeedbackRefused(Exception):
    """Feedback the book does not take: the app answers it with OpenAI's error body."""

    def __init__(self, status: int, message: str, param: str | None, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


class Served(NamedTuple):
    """What the book keeps of a served request, as one string (`remembered`, `recalled`): a
    memory that holds only strings and numbers is one the garbage collector never looks at.
    The user is hashed only when an event is stored."""

    key: str
    team: str
    user: str
    model: str
    model_version: str
    pool: str = ""


def remembered(fields: tuple[str, str, str, str, str, str]) -> str:
    """Served's fields as one string; the user (the one field a client chose, which may hold
    anything) goes last, so the separator inside it cannot shift the rest."""
    key, team, user, model, model_version, pool = fields
    return f"{key}{_SEP}{team}{_SEP}{model}{_SEP}{model_version}{_SEP}{pool}{_SEP}{user}"


def recalled(text: str) -> Served:
    key, team, model, model_version, pool, user = text.split(_SEP, 5)
    return Served(key, team, user, model, model_version, pool)


class Memory:
    """The last `size` to `2 * size` entries put, in two plain dicts: puts go to the young one,
    which becomes the old one once it holds `size` (the old one dropped). Keys and values are
    strings, so neither dict is ever tracked by the garbage collector, and a full collection
    never walks them (an OrderedDict, a dict subclass, is always tracked)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._young: dict[str, str] = {}
        self._old: dict[str, str] = {}

    def put(self, key: str, value: str) -> None:
        self._young[key] = value
        if len(self._young) >= self.size:
            self._old, self._young = self._young, {}

    def get(self, key: str) -> str | None:
        value = self._young.get(key)
        return self._old.get(key) if value is None else value


class FeedbackBook:
    """Feedback events of one gateway process."""

    def __init__(
        self,
        registry: CollectorRegistry,
        spool: SpoolAppender | None,
        wall: Clock,
        salt: str = "",
        on_negative: Callable[[str, int], None] | None = None,
    ) -> None:
        self.on_negative = on_negative  # told the pool of negative events (rollout gates)
        self.counter = names.counter(names.FEEDBACK_EVENTS, registry)
        self.spool = spool
        self.wall = wall
        self.salt = salt
        self.recent = Memory(REMEMBERED // 2)  # request id -> remembered(...)
        self._ids = secrets.token_hex(6)
        self._serial = 0
        self._children: dict[tuple[str, str, str, str], Any] = {}  # labels -> counter child
        self._rows: list[tuple[Any, ...]] = []  # spool rows not written yet
        self._flush: asyncio.TimerHandle | None = None

    def open(self) -> None:
        if self.spool is not None:
            self.spool.open()

    def close(self) -> None:
        self.flush()
        if self.spool is not None:
            self.spool.close()

    def flush(self) -> None:
        """Write the rows waiting for the spool, in one line."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        rows, self._rows = self._rows, []
        if rows and self.spool is not None:
            self.spool.append(rows)

    def served(  # noqa: PLR0917 (one request's facts)
        self,
        request_id: str,
        key: ApiKey,
        user: str | None,
        model: str,
        model_version: str,
        abandoned: bool,
        pool: str = "",
    ) -> None:
        """Note a request a replica answered (and whether its client left the stream)."""
        fields = (key.name, key.team, user or "", model, model_version, pool)
        self.recent.put(request_id, remembered(fields))
        if abandoned:
            self._abandoned(request_id, fields)

    def regenerated(self, model: str, version: str, pool: str, count: int) -> None:
        """Count regenerations the ledger writer found (and stored) about a pool's answers."""
        self._count(model, version, "regeneration", "true", count)
        if self.on_negative is not None:
            self.on_negative(pool, count)

    def _abandoned(self, request_id: str, fields: tuple[str, str, str, str, str, str]) -> None:
        """An abandoned stream (negative, value 1): the same row and count as a
        FeedbackRecord's, built without one, its spool write batched."""
        kind: FeedbackKind = "abandoned"
        key, team, user, model, version, pool = fields
        self._count(model, version, kind, "true")
        if self.on_negative is not None:
            self.on_negative(pool, 1)
        if self.spool is None:
            return
        self._serial += 1
        user_hash = hash_user(user, self.salt) if user else ""
        feedback_id = f"{request_id}:{kind}:{self._ids}-{self._serial}"
        # FEEDBACK_FIELDS order (a test holds the two ways of building a row together)
        row = (feedback_id, self.wall(), request_id, kind, 1.0, key, team, user_hash)
        self._rows.append((*row, model, version, ""))
        if self._flush is None:
            self._flush = _later(FLUSH_S, self.flush)
        if self._flush is None:  # no event loop to wait on: write now
            self.flush()

    def _count(self, model: str, version: str, kind: str, negative: str, count: int = 1) -> None:
        labels = (model or "_unknown", version, kind, negative)
        child = self._children.get(labels)
        if child is None:  # labels() takes a lock and builds a key: once per label set
            child = self._children[labels] = self.counter.labels(*labels)
        child.inc(count)

    def submit(self, key: ApiKey, body: bytes) -> bytes:
        """Store the feedback a client sent; the answer's body. FeedbackRefused on a bad body or
        on feedback about another key's request."""
        request_id, kind, value, text = parse_feedback(body)
        kept = self.recent.get(request_id)
        served = None if kept is None else recalled(kept)
        if served is not None and served.key != key.name:
            raise FeedbackRefused(403, "That request was made with another key.", None, "forbidden")
        if served is None:  # another worker served it: reports join the usage record
            served = Served(key.name, key.team, "", "", "")
        record = self._event(request_id, served, kind, value, text)
        return orjson.dumps({"id": record.feedback_id, "object": "feedback", "stored": True})

    def _event(
        self, request_id: str, served: Served, kind: FeedbackKind, value: float, text: str = ""
    ) -> FeedbackRecord:
        self._serial += 1
        record = FeedbackRecord(
            feedback_id=f"{request_id}:{kind}:{self._ids}-{self._serial}",
            time=self.wall(),
            request_id=request_id,
            kind=kind,
            value=value,
            key=served.key,
            team=served.team,
            user_hash=hash_user(served.user, self.salt) if served.user else "",
            model=served.model,
            model_version=served.model_version,
            text=text,
        )
        self._count(
            served.model, served.model_version, kind, "true" if record.negative else "false"
        )
        if record.negative and self.on_negative is not None:
            self.on_negative(served.pool, 1)
        if self.spool is not None:  # the client is told it is stored: written now
            self._rows.append(record.to_row())
            self.flush()
        return record


def _later(delay_s: float, callback: Callable[[], None]) -> asyncio.TimerHandle | None:
    """`callback` after `delay_s` on the running event loop; None outside one."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop.call_later(delay_s, callback)


def parse_feedback(body: bytes) -> tuple[str, FeedbackKind, float, str]:
    """(request id, kind, value, note) of a feedback body:
    {"request_id": "...", "rating": 1..5 | "thumbs": "up" | "down" | true | false, "text": ...}"""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise _bad(f"The feedback body is not valid JSON: {error}.") from error
    if not isinstance(data, dict):
        raise _bad("The feedback body must be a JSON object.")
    request_id = data.get("request_id")
    if not isinstance(request_id, str) or not request_id or len(request_id) > 200:
        raise _bad("Feedback needs the `request_id` of the answer (x-request-id).", "request_id")
    text = data.get("text", "")
    if not isinstance(text, str):
        raise _bad("`text` must be a string.", "text")
    kind, value = _judgement(data)
    return request_id, kind, value, text[:MAX_TEXT]


def _judgement(data: dict[str, Any]) -> tuple[FeedbackKind, float]:
    rating, thumbs = data.get("rating"), data.get("thumbs")
    if (rating is None) == (thumbs is None):
        raise _bad("Feedback needs exactly one of `rating` (1..5) and `thumbs` (up | down).")
    if rating is not None:
        if isinstance(rating, bool) or not isinstance(rating, int | float) or not 1 <= rating <= 5:
            raise _bad("`rating` must be a number from 1 to 5.", "rating")
        return "rating", float(rating)
    if thumbs in ("up", True):
        return "thumbs", 1.0
    if thumbs in ("down", False):
        return "thumbs", 0.0
    raise _bad('`thumbs` must be "up" or "down".', "thumbs")


def _bad(message: str, param: str | None = None) -> FeedbackRefused:
    return FeedbackRefused(400, message, param, "invalid_request")


def feedback_spool(folder: Any, name: str) -> SpoolAppender:
    """The spool segment a worker's feedback goes to (beside its usage records)."""
    return SpoolAppender(folder, f"{name}-feedback", columns=FEEDBACK_FIELDS)
