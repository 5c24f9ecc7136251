"""The writer's regeneration totals and the gateway's echo of them: totals grow by events not
counted before, survive a restarted writer without counting again what its predecessor
counted, and a gateway counts only what grew after its start; an unreadable file is empty."""

from pathlib import Path

from inferplane.ledger.feedback import FEEDBACK_FIELDS
from inferplane.ledger.regeneration_counts import (
    ECHO_FILE,
    RegenerationCounts,
    RegenerationEcho,
    read_totals,
)
from inferplane.ledger.regenerations import Regeneration


def _event(event_id: str, time: float, version: str = "v1", pool: str = "main") -> Regeneration:
    values = {"feedback_id": event_id, "time": time, "model": "chat", "model_version": version}
    return Regeneration(tuple(values.get(name, "") for name in FEEDBACK_FIELDS), pool)


def test_totals_count_each_event_once_and_reach_the_gateway(tmp_path: Path) -> None:
    counts = RegenerationCounts(tmp_path)
    counts.add([_event("a", 10.0)])
    counts.save()
    echo = RegenerationEcho(tmp_path)  # a gateway started now: "a" was before its time
    assert echo.news() == []
    assert counts.add([_event("a", 10.0), _event("b", 20.0), _event("c", 30.0, "v2")]) == 2
    counts.save()
    assert sorted(echo.news()) == [(("chat", "v1", "main"), 1), (("chat", "v2", "main"), 1)]
    assert echo.news() == []  # nothing grew since


def test_a_restarted_writer_counts_nothing_twice(tmp_path: Path) -> None:
    first = RegenerationCounts(tmp_path)
    first.add([_event("a", 10.0), _event("b", 20.0)])
    first.save()
    again = RegenerationCounts(tmp_path)  # re-reads the spool: finds a and b again, and c
    assert again.add([_event("a", 10.0), _event("b", 20.0), _event("c", 30.0)]) == 1
    again.save()
    assert read_totals(tmp_path / ECHO_FILE) == ({("chat", "v1", "main"): 3}, 30.0)


def test_a_missing_or_broken_file_reads_as_nothing(tmp_path: Path) -> None:
    assert read_totals(tmp_path / ECHO_FILE) == ({}, 0.0)
    (tmp_path / ECHO_FILE).write_bytes(b'{"totals": [["chat"]]')
    assert read_totals(tmp_path / ECHO_FILE) == ({}, 0.0)
    assert RegenerationEcho(tmp_path).news() == []
