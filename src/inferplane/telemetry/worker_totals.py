"""The status page's counts for a process's N workers: whichever worker /ui reaches shows them all.

The page's charts (requests/s, TTFT, cost) come from counter deltas between samples that each
worker takes once a second (telemetry/ui.py). With several workers sharing the port, each
worker's counters hold only the requests the kernel gave it, so the page showed 1/N of the
traffic, a different share at each poll. At each sample a worker writes its own totals (three
counts and the TTFT buckets, a few hundred bytes) to a file in the folder the workers share for
/metrics (telemetry/worker_metrics.py), and sums every worker's latest file with its own. The
others' share is at most one sample interval old; each file only moves forward, so the sums do
too (a restarted worker's file starts again from zero, which the page clamps for one point).
"""

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry

from inferplane.telemetry.ui import Totals, read_totals

_SUFFIX = ".totals.json"


class SharedTotals:
    """One worker's side: `__call__(at)` publishes its totals and returns every worker's sum."""

    def __init__(self, folder: Path, worker: int, registry: CollectorRegistry) -> None:
        self.folder = folder
        self.registry = registry
        self.path = folder / f"worker-{worker}{_SUFFIX}"

    def __call__(self, at: float) -> Totals:
        own = read_totals(self.registry, at)
        self._publish(own)
        others = (self._read(path) for path in sorted(self.folder.glob(f"*{_SUFFIX}")))
        return summed(at, [own, *(t for t in others if t is not None)])

    def _publish(self, totals: Totals) -> None:
        part = self.path.with_suffix(".part")
        with contextlib.suppress(OSError):  # a full disk must not take the page down
            part.write_text(json.dumps(_as_json(totals)))
            os.replace(part, self.path)

    def _read(self, path: Path) -> Totals | None:
        if path == self.path:
            return None
        try:
            return _from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):  # mid-replace or foreign: skip it
            return None


def summed(at: float, parts: Iterable[Totals]) -> Totals:
    """Several workers' totals as one, at `at`."""
    requests = cost = 0.0
    buckets: dict[float, float] = {}
    for part in parts:
        requests += part.requests
        cost += part.cost
        for bound, count in part.ttft_buckets:
            buckets[bound] = buckets.get(bound, 0.0) + count
    return Totals(at, requests, tuple(sorted(buckets.items())), cost)


def _as_json(totals: Totals) -> dict[str, object]:
    # bounds as strings: JSON has no infinity, and float("inf") reads "inf" back
    buckets = [[str(bound), count] for bound, count in totals.ttft_buckets]
    return {"requests": totals.requests, "cost": totals.cost, "ttft_buckets": buckets}


def _from_json(data: dict[str, object]) -> Totals:
    raw = data["ttft_buckets"]
    if not isinstance(raw, list):
        raise TypeError("ttft_buckets is not a list")
    buckets = tuple((float(bound), float(count)) for bound, count in raw)
    return Totals(0.0, float(str(data["requests"])), buckets, float(str(data["cost"])))
