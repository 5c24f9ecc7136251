"""The usage store: usage records in SQL through SQLAlchemy Core.

SQLite (WAL mode) by default, PostgreSQL by URL (`postgresql://` uses psycopg 3). Writes are
idempotent by request id: writing a record twice stores it once, so a spool can be replayed.
Rows go to the driver's executemany as they are, lists or tuples (write_rows): the ledger
writer stores thousands a second, and SQLAlchemy's per-row compilation would cost more than
the insert itself. Feedback records (ledger/feedback.py) live in a table of their own in the
same database; rows whose columns name a `feedback_id` go there.
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
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url

from inferplane.config.schema import Ledger
from inferplane.ledger.feedback import FEEDBACK_FIELDS, FeedbackRecord, feedback_table
from inferplane.ledger.usage import ROW_FIELDS, UsageRecord

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
        Column("mean_logprob", Double, nullable=True),
        Column("low_confidence_share", Double, nullable=True),
        Column("prompt_hash", BigInteger, nullable=True),
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


def _add_missing_columns(engine: Engine, table: Table) -> None:
    """Nullable columns added since a ledger was created (its old rows read as NULL there)."""
    present = {column["name"] for column in inspect(engine).get_columns(table.name)}
    missing = [c for c in table.columns if c.name not in present and c.nullable]
    if not missing:
        return
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as connection:
        for column in missing:
            kind = column.type.compile(dialect=engine.dialect)
            sql = f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}"
            connection.execute(text(sql))


class UsageStore:
    """Usage records in a SQL database. Nothing touches the database until open()."""

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.url = normalise_url(url)
        self._metadata = MetaData()
        self.table = usage_table(self._metadata)
        self.feedback_table = feedback_table(self._metadata)
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
        _add_missing_columns(engine, self.table)
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
        self.write_rows(ROW_FIELDS, [record.to_row() for record in records])

    def write_feedback(self, records: Iterable[FeedbackRecord]) -> None:
        """Insert feedback records; ids already stored are left as they are."""
        self.write_rows(FEEDBACK_FIELDS, [record.to_row() for record in records])

    def write_rows(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert rows (values in `columns` order, as the spool holds them) in one
        transaction; ids already stored are left as they are. Rows with a `feedback_id` are
        feedback records, the others usage records."""
        if not rows:
            return
        table, id_column = self._table_for(columns)
        unknown = set(columns) - set(table.columns.keys())
        if unknown or id_column not in columns:
            raise ValueError(f"rows with columns {sorted(unknown)} or no {id_column}")
        at = list(columns).index(id_column)
        unique = list({row[at]: row for row in rows}.values())
        with self.engine.begin() as connection:
            sql = self._insert_sql(table, id_column, tuple(columns))
            if sql is None:
                dicts = [dict(zip(columns, row, strict=True)) for row in unique]
                connection.execute(self._insert_ignoring_duplicates(table, id_column), dicts)
            else:  # the DBAPI cursor itself: rows may be lists, as the spool's JSON gives them
                cursor = connection.connection.cursor()
                try:
                    cursor.executemany(sql, unique)
                finally:
                    cursor.close()

    def _table_for(self, columns: Sequence[str]) -> tuple[Table, str]:
        if "feedback_id" in columns:
            return self.feedback_table, "feedback_id"
        return self.table, "request_id"

    def _insert_sql(self, table: Table, id_column: str, columns: tuple[str, ...]) -> str | None:
        """INSERT ... ON CONFLICT DO NOTHING in the driver's own parameter style."""
        mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(self.engine.dialect.paramstyle)
        if mark is None:
            return None
        quote = self.engine.dialect.identifier_preparer.quote
        names = ", ".join(quote(name) for name in columns)
        marks = ", ".join([mark] * len(columns))
        return (
            f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks}) "
            f"ON CONFLICT ({quote(id_column)}) DO NOTHING"
        )

    def _insert_ignoring_duplicates(self, table: Table, id_column: str) -> Insert:
        if self.is_sqlite:
            return sqlite.insert(table).on_conflict_do_nothing(index_elements=[id_column])
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=[id_column])

    def records(self, since: float | None = None, until: float | None = None) -> list[UsageRecord]:
        """Records that started in [since, until), oldest first."""
        query = select(self.table).order_by(self.table.c.time, self.table.c.request_id)
        if since is not None:
            query = query.where(self.table.c.time >= since)
        if until is not None:
            query = query.where(self.table.c.time < until)
        with self.engine.connect() as connection:
            return [UsageRecord.from_dict(dict(row._mapping)) for row in connection.execute(query)]

    def feedback(self, since: float | None = None) -> list[FeedbackRecord]:
        """Feedback records given since a time, oldest first."""
        table = self.feedback_table
        query = select(table).order_by(table.c.time, table.c.feedback_id)
        if since is not None:
            query = query.where(table.c.time >= since)
        with self.engine.connect() as connection:
            return [
                FeedbackRecord.from_dict(dict(row._mapping)) for row in connection.execute(query)
            ]

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
