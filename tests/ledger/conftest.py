"""Ledger fixtures: a usage store on SQLite and, where INFERPLANE_TEST_POSTGRES_URL is set,
on PostgreSQL (scripts/ci/postgres.sh starts a throwaway one)."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from inferplane.ledger.store import UsageStore, normalise_url
from inferplane.ledger.usage import UsageRecord

POSTGRES_ENV = "INFERPLANE_TEST_POSTGRES_URL"


def _fresh_postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set (scripts/ci/postgres.sh starts a PostgreSQL)")
    engine = create_engine(normalise_url(url))
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS usage")
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to an empty ledger database, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return _fresh_postgres_url()


@pytest.fixture
def store(store_url: str) -> Iterator[UsageStore]:
    with UsageStore(store_url) as opened:
        yield opened


RecordFactory = Callable[..., UsageRecord]


@pytest.fixture
def make_record() -> RecordFactory:
    def make(request_id: str, **changes: object) -> UsageRecord:
        fields: dict[str, object] = {
            "time": 1_790_000_000.0,
            "request_id": request_id,
            "model": "chat-small",
            "pool": "chat-primary",
            "replica": "chat-primary-0",
            "gpu_type": "H100-SXM",
            "gpu_seconds": 0.5,
            "cost_micro_usd": 374,
            "key": "key-a",
            "team": "ml",
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "ttft_s": 0.05,
            "duration_s": 0.6,
        }
        fields.update(changes)
        return UsageRecord(**fields)  # type: ignore[arg-type]

    return make
