"""Rollout state on disk: one JSON file per pool, written atomically.

A write goes to a temporary file in the same directory, is flushed to disk, then renamed over
the old file (os.replace), so a crash leaves either the old state or the new one, never half
of one. A restarted controller loads the file and resumes at the same step with the hold time
it had left.
"""

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from inferplane.control.rollout import Gates, RolloutPlan, RolloutState, WindowMetrics

FORMAT_VERSION = 1


def state_to_dict(state: RolloutState) -> dict[str, Any]:
    return {"version": FORMAT_VERSION, **asdict(state)}


def state_from_dict(data: dict[str, Any]) -> RolloutState:
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"rollout state version {data.get('version')!r} is not {FORMAT_VERSION}: "
            "finish or delete that rollout with the inferplane that started it"
        )
    plan = dict(data["plan"])
    plan["steps"] = tuple(float(step) for step in plan["steps"])
    plan["gates"] = Gates(**plan["gates"])
    reference = data.get("reference")
    return RolloutState(
        plan=RolloutPlan(**plan),
        status=data["status"],
        step=int(data["step"]),
        held_s=float(data["held_s"]),
        reason=str(data["reason"]),
        reference=None if reference is None else WindowMetrics(**reference),
    )


class RolloutStore:
    """Rollout states of a fleet's pools, in a directory."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, pool: str) -> Path:
        if not pool or "/" in pool or pool.startswith("."):
            raise ValueError(f"invalid pool name for a rollout file: {pool!r}")
        return self.directory / f"rollout-{pool}.json"

    def save(self, state: RolloutState) -> Path:
        target = self.path(state.plan.pool)
        self.directory.mkdir(parents=True, exist_ok=True)
        text = json.dumps(state_to_dict(state), indent=2, sort_keys=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=self.directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def load(self, pool: str) -> RolloutState | None:
        path = self.path(pool)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return state_from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: unreadable rollout state ({error})") from error

    def load_all(self) -> list[RolloutState]:
        """Every stored rollout, by pool name."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.glob("rollout-*.json")):
            state = self.load(path.stem.removeprefix("rollout-"))
            if state is not None:
                found.append(state)
        return found

    def delete(self, pool: str) -> None:
        self.path(pool).unlink(missing_ok=True)
