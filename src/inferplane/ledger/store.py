"""The usage store: usage records in SQL through SQLAlchemy Core.

SQLite (WAL mode) by default, PostgreSQL by URL (`postgresql://` uses psycopg 3). Writes are
idempotent by request id: writing a record twice stores it once, so a spool can be replayed.
"""

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Self

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Engine,
    Index,
    Insert,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url

from inferplane.config.schema import Ledger
from inferplane.ledger.usage import UsageRecord

DEFAULT_URL = Ledger().url
Scope = Literal["key", "team"]


def usage_table(metadata: MetaData) -> Table:
    return Table(
        "usage",
        metadata,
        Column("request_id", String(200), primary_key=True),
        Column("kind", String(16), nullable=False),
        Column("time", Double, nullable=False),
        Column("key", String(200), nullable=False),
        Column("team", String(200), nullable=False),
        Column("user_hash", String(64), nullable=False),
        Column("model", String(200), nullable=False),
        Column("model_version", String(100), nullable=False),
        Column("pool", String(200), nullable=False),
        Column("replica", String(200), nullable=False),
        Column("gpu_type", String(50), nullable=False),
        Column("prompt_tokens", Integer, nullable=False),
        Column("cached_tokens", Integer, nullable=False),
        Column("completion_tokens", Integer, nullable=False),
        Column("ttft_s", Double, nullable=True),
        Column("duration_s", Double, nullable=False),
        Column("status", String(32), nullable=False),
        Column("gpu_seconds", Double, nullable=False),
        Column("cost_micro_usd", BigInteger, nullable=False),
        Index("ix_usage_time", "time"),
        Index("ix_usage_team_time", "team", "time"),
        Index("ix_usage_key_time", "key", "time"),
    )


def normalise_url(url: str) -> URL:
    """SQLAlchemy's URL for a ledger URL: `~` expanded, PostgreSQL through psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "sqlite" and parsed.database:
        return parsed.set(database=str(Path(parsed.database).expanduser()))
    if parsed.drivername not in ("sqlite", "postgresql+psycopg"):
        raise ValueError(f"unsupported ledger URL {url!r}: use sqlite:///PATH or postgresql://...")
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets report readers run while the gateway writes; NORMAL sync is safe under WAL.
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


class UsageStore:
    """Usage records in a SQL database. Nothing touches the database until open()."""

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.url = normalise_url(url)
        self._metadata = MetaData()
        self.table = usage_table(self._metadata)
        self._engine: Engine | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.url.drivername == "sqlite"

    def open(self) -> Self:
        """Connect and create the table if it is missing (safe to call on an existing DB)."""
        if self._engine is not None:
            return self
        if self.is_sqlite and self.url.database:
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(self.url)
        if self.is_sqlite:
            event.listen(engine, "connect", _sqlite_pragmas)
        self._metadata.create_all(engine)
        self._engine = engine
        return self

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the usage store is not open: call open() first")
        return self._engine

    def write(self, records: Iterable[UsageRecord]) -> None:
        """Insert records in one transaction; ids already stored are left as they are."""
        rows = _dedupe([record.to_dict() for record in records])
        if rows:
            with self.engine.begin() as connection:
                connection.execute(self._insert_ignoring_duplicates(), rows)

    def _insert_ignoring_duplicates(self) -> Insert:
        if self.is_sqlite:
            return sqlite.insert(self.table).on_conflict_do_nothing(index_elements=["request_id"])
        return postgresql.insert(self.table).on_conflict_do_nothing(index_elements=["request_id"])

    def records(self, since: float | None = None, until: float | None = None) -> list[UsageRecord]:
        """Records that started in [since, until), oldest first."""
        query = select(self.table).order_by(self.table.c.time, self.table.c.request_id)
        if since is not None:
            query = query.where(self.table.c.time >= since)
        if until is not None:
            query = query.where(self.table.c.time < until)
        with self.engine.connect() as connection:
            return [UsageRecord.from_dict(dict(row._mapping)) for row in connection.execute(query)]

    def count(self) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(select(func.count()).select_from(self.table)).scalar_one()
            )

    def spend_micro(self, scope: Scope, name: str, since: float) -> int:
        """What a key or team has spent since a time, in micro-dollars (to seed budgets)."""
        column = self.table.c.key if scope == "key" else self.table.c.team
        query = select(func.coalesce(func.sum(self.table.c.cost_micro_usd), 0)).where(
            column == name, self.table.c.time >= since
        )
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())


def _dedupe(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    # PostgreSQL refuses one INSERT that hits the same key twice, even with ON CONFLICT.
    return list({row["request_id"]: row for row in rows}.values())
