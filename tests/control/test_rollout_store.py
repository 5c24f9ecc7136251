import json
from pathlib import Path

import pytest

from inferplane.control.rollout import Gates, Rollout, RolloutPlan, WindowMetrics
from inferplane.control.rollout_store import RolloutStore

GOOD = WindowMetrics(requests=100, errors=0, ttft_p95_s=0.2, tpot_p95_s=0.02)


def test_round_trip_and_resume(tmp_path: Path) -> None:
    store = RolloutStore(tmp_path / "state")
    plan = RolloutPlan("chat", "chat-v2", (10.0, 100.0), 30.0, Gates(min_requests=10))
    rollout = Rollout.start(plan)
    rollout.evaluate(0, GOOD, GOOD)
    rollout.evaluate(20, GOOD, GOOD)
    store.save(rollout.state)
    loaded = store.load("chat")
    assert loaded == rollout.state
    resumed = Rollout(loaded)
    assert resumed.evaluate(900, GOOD, GOOD).action == "hold"
    assert resumed.evaluate(910, GOOD, GOOD).action == "advance"
    assert [s.plan.pool for s in store.load_all()] == ["chat"]


def test_missing_and_deleted(tmp_path: Path) -> None:
    store = RolloutStore(tmp_path)
    assert store.load("chat") is None
    assert RolloutStore(tmp_path / "none").load_all() == []
    store.save(Rollout.start(RolloutPlan("chat", "v2")).state)
    store.delete("chat")
    assert store.load("chat") is None


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = RolloutStore(tmp_path)
    for _ in range(3):
        store.save(Rollout.start(RolloutPlan("chat", "v2")).state)
    assert [p.name for p in tmp_path.iterdir()] == ["rollout-chat.json"]


def test_unreadable_states_say_so(tmp_path: Path) -> None:
    store = RolloutStore(tmp_path)
    path = store.save(Rollout.start(RolloutPlan("chat", "v2")).state)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        store.load("chat")
    path.write_text("{")
    with pytest.raises(ValueError, match="unreadable rollout state"):
        store.load("chat")
    with pytest.raises(ValueError, match="invalid pool"):
        store.path("../x")
