"""One /metrics for a process's N workers: whichever worker a scrape reaches answers for all.

The gateway's workers share a port (SO_REUSEPORT), so a scrape lands on one of them at random,
and each holds its own counters: a scrape would see one worker's requests, and the next
another's (Prometheus reads the drop as a counter reset). Prometheus' multiprocess mode would
put every increment through a memory-mapped file, a lock and a pack on the request path; here
nothing changes there. Each worker writes its exposition to a file of its own in a folder the
workers share, whenever it answers a scrape and, while anyone scrapes (a scrape in the last
SCRAPED_S), every SNAPSHOT_S (rendering costs a worker a few milliseconds: nothing is spent
while no one looks). The worker a scrape reaches merges every worker's latest file:

- counters, histograms and summaries are summed;
- gauges are the largest value (most gauges here are the same in every worker: replicas
  ready, SLAs), except SUMMED_GAUGES, which each worker counts for its own requests
  (requests queued in the gateway), and AVERAGED_GAUGES, which each worker estimates from
  its own share of the traffic (drift scores: each worker samples the prompts it served, a
  random split of the same stream, so each score is one noisy estimate of the same drift and
  the largest of N would raise false drift alerts); `_created` timestamps keep the earliest.

Each file only moves forward and the answering worker refreshes its own before reading, so a
counter never goes down from one scrape to the next; other workers' share is at most
SNAPSHOT_S old (at the first scrape after SCRAPED_S of none, as old as their last scrape).
"""

import contextlib
import operator
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

SNAPSHOT_S = 5.0
SCRAPED_S = 120.0  # snapshots are written while a scrape came this recently
SUMMED_GAUGES = frozenset({"inference_gateway_queued"})
AVERAGED_GAUGES = frozenset({"inference_input_drift_score"})
_SUFFIX = ".prom"
_Key = tuple[str, tuple[tuple[str, str], ...]]  # a sample's name and sorted labels


class SharedMetrics:
    """One worker's side: its snapshot file, and the merged exposition of all workers'."""

    def __init__(self, folder: Path, worker: int, registry: CollectorRegistry) -> None:
        self.folder = folder
        self.worker = worker
        self.registry = registry
        self.path = folder / f"worker-{worker}{_SUFFIX}"
        self.scraped = folder / "scraped"  # touched by every scrape, whichever worker answers

    def publish(self) -> None:
        """Replace this worker's snapshot with its metrics now."""
        part = self.path.with_suffix(".part")
        with contextlib.suppress(OSError):  # a full disk must not take /metrics down
            part.write_bytes(generate_latest(self.registry))
            os.replace(part, self.path)

    def publish_if_scraped(self) -> None:
        """The periodic snapshot, written only while someone scrapes."""
        try:
            last = self.scraped.stat().st_mtime
        except OSError:
            return
        if time.time() - last <= SCRAPED_S:
            self.publish()

    def render(self) -> bytes:
        """Every worker's metrics merged, this worker's as of now."""
        with contextlib.suppress(OSError):
            self.scraped.touch()
        self.publish()
        texts = []
        for path in sorted(self.folder.glob(f"*{_SUFFIX}")):
            with contextlib.suppress(OSError):
                texts.append(path.read_text())
        return merge(texts)


def merge(texts: Iterable[str]) -> bytes:
    """Expositions of several workers as one (see the module's rules)."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[_Key, float]] = {}
    seen: dict[_Key, int] = {}  # how many workers gave each averaged sample
    for text in texts:
        for family in text_string_to_metric_families(text):
            kept = families.setdefault(family.name, family)
            combine = _combiner(kept)
            samples = values.setdefault(family.name, {})
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                earlier = samples.get(key)
                samples[key] = sample.value if earlier is None else combine(earlier, sample.value)
                if family.name in AVERAGED_GAUGES:
                    seen[key] = seen.get(key, 0) + 1
    for name in AVERAGED_GAUGES & values.keys():
        values[name] = {key: total / seen[key] for key, total in values[name].items()}
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(families, values))
    return generate_latest(registry)


def _combiner(family: Metric) -> Callable[[float, float], float]:
    if family.type != "gauge" or family.name in SUMMED_GAUGES | AVERAGED_GAUGES:
        return operator.add
    return min if family.name.endswith("_created") else max


class _Merged(Collector):
    def __init__(
        self,
        families: dict[str, Metric],
        values: dict[str, dict[_Key, float]],
    ) -> None:
        self.families, self.values = families, values

    def collect(self) -> Iterator[Metric]:
        for name, family in self.families.items():
            merged = Metric(family.name, family.documentation, family.type, family.unit)
            merged.samples = [
                Sample(sample, dict(labels), value)
                for (sample, labels), value in self.values[name].items()
            ]
            yield merged
