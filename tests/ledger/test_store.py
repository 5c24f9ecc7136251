import sqlite3
from pathlib import Path

import pytest

from inferplane.ledger.store import UsageStore, normalise_url
from tests.ledger.conftest import RecordFactory


def test_round_trip(store: UsageStore, make_record: RecordFactory) -> None:
    record = make_record("r1", ttft_s=None, user_hash="ab12", status="error", cached_tokens=64)
    store.write([record])
    assert store.records() == [record]


def test_writes_are_idempotent_by_request_id(store: UsageStore, make_record: RecordFactory) -> None:
    store.write([make_record("r1"), make_record("r2")])
    store.write([make_record("r2", cost_micro_usd=999), make_record("r3"), make_record("r3")])
    assert store.count() == 3
    by_id = {r.request_id: r for r in store.records()}
    assert by_id["r2"].cost_micro_usd == 374  # the first write stands


def test_time_window_and_spend(store: UsageStore, make_record: RecordFactory) -> None:
    store.write(
        [
            make_record("old", time=100.0, cost_micro_usd=5),
            make_record("a", time=200.0, cost_micro_usd=7),
            make_record("b", time=300.0, cost_micro_usd=11, team="web", key="key-b"),
        ]
    )
    assert [r.request_id for r in store.records(since=150.0)] == ["a", "b"]
    assert [r.request_id for r in store.records(since=150.0, until=300.0)] == ["a"]
    assert store.spend_micro("team", "ml", since=150.0) == 7
    assert store.spend_micro("key", "key-b", since=0.0) == 11
    assert store.spend_micro("team", "nobody", since=0.0) == 0


def test_reopening_keeps_records(store_url: str, make_record: RecordFactory) -> None:
    with UsageStore(store_url) as first:
        first.write([make_record("r1")])
    with UsageStore(store_url) as second:
        assert second.count() == 1


def test_sqlite_is_in_wal_mode(tmp_path: Path, make_record: RecordFactory) -> None:
    path = tmp_path / "sub" / "ledger.db"
    with UsageStore(f"sqlite:///{path}") as store:
        store.write([make_record("r1")])
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_urls() -> None:
    home = Path.home()
    assert normalise_url("sqlite:///~/.inferplane/ledger.db").database == str(
        home / ".inferplane" / "ledger.db"
    )
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(ValueError, match="use sqlite:///PATH or postgresql"):
        normalise_url("mysql://u@h/db")


def test_not_open_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="call open"):
        UsageStore("sqlite:///x.db").count()
