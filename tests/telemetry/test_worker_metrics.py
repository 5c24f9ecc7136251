"""Workers' metrics merged into one exposition: counters and histograms summed, gauges the
largest but the per-worker ones summed, `_created` the earliest; a scrape answered by either
worker gives the same totals, which never go down; a missing or unreadable snapshot is
skipped."""

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

from inferplane.telemetry.worker_metrics import SharedMetrics, merge


class Worker:
    """The metrics one gateway worker holds (the same names and kinds the gateway has)."""

    def __init__(self, folder: Path, index: int) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("inference_request", "Requests.", ["pool"], registry=r)
        self.ttft = Histogram("ttft_seconds", "TTFT.", ["pool"], buckets=(0.1, 1.0), registry=r)
        self.ready = Gauge("inference_gateway_replicas_ready", "Ready.", ["pool"], registry=r)
        self.queued = Gauge("inference_gateway_queued", "Queued.", ["pool"], registry=r)
        self.shared = SharedMetrics(folder, index, self.registry)


def _samples(exposition: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(exposition.decode())
        for s in family.samples
    }


def _value(exposition: bytes, name: str, **labels: str) -> float:
    return _samples(exposition)[(name, tuple(sorted(labels.items())))]


def test_either_worker_answers_for_both(tmp_path: Path) -> None:
    a, b = Worker(tmp_path, 0), Worker(tmp_path, 1)
    a.requests.labels("main").inc(3)
    b.requests.labels("main").inc(4)
    a.ttft.labels("main").observe(0.05)
    b.ttft.labels("main").observe(0.5)
    for worker in (a, b):
        worker.ready.labels("main").set(2)  # both see the same replicas
    a.queued.labels("main").set(1)
    b.queued.labels("main").set(5)
    b.shared.publish()
    scrape = a.shared.render()
    assert _value(scrape, "inference_request_total", pool="main") == 7
    assert _value(scrape, "ttft_seconds_bucket", pool="main", le="0.1") == 1
    assert _value(scrape, "ttft_seconds_bucket", pool="main", le="1.0") == 2
    assert _value(scrape, "ttft_seconds_count", pool="main") == 2
    assert _value(scrape, "ttft_seconds_sum", pool="main") == 0.55
    assert _value(scrape, "inference_gateway_replicas_ready", pool="main") == 2
    assert _value(scrape, "inference_gateway_queued", pool="main") == 6
    created = [_value(w.shared.render(), "inference_request_created", pool="main") for w in (a, b)]
    assert created[0] == created[1] == min(created)
    assert _samples(b.shared.render()) == _samples(scrape)  # the other worker says the same


def test_totals_never_go_down_whichever_worker_answers(tmp_path: Path) -> None:
    a, b = Worker(tmp_path, 0), Worker(tmp_path, 1)
    seen = []
    for step in range(6):
        counting = (b, a)[step % 2]
        counting.requests.labels("main").inc()
        counting.shared.publish()  # as its periodic snapshot does
        answering = (a, b)[step % 2]
        seen.append(_value(answering.shared.render(), "inference_request_total", pool="main"))
    assert seen == sorted(seen) and seen[-1] == 6


def test_a_broken_or_missing_snapshot_is_skipped(tmp_path: Path) -> None:
    a = Worker(tmp_path, 0)
    a.requests.labels("main").inc(2)
    (tmp_path / "worker-1.prom").mkdir()  # unreadable as a file
    assert _value(a.shared.render(), "inference_request_total", pool="main") == 2


def test_snapshots_are_written_only_while_someone_scrapes(tmp_path: Path) -> None:
    a, b = Worker(tmp_path, 0), Worker(tmp_path, 1)
    b.requests.labels("main").inc()
    b.shared.publish_if_scraped()
    assert not b.shared.path.exists()  # no scrape yet: nothing written
    a.shared.render()  # a scrape, answered by the other worker
    b.shared.publish_if_scraped()
    assert _value(a.shared.render(), "inference_request_total", pool="main") == 1


def test_merge_of_nothing_is_empty() -> None:
    assert merge([]) == b""


def test_drift_scores_are_the_workers_mean(tmp_path: Path) -> None:
    """Each worker scores drift on its own share of the prompts: one estimate each, averaged
    (the largest of them would turn sampling noise into drift alerts)."""
    workers = [Worker(tmp_path, index) for index in range(3)]
    drift = [
        Gauge(
            "inference_input_drift_score",
            "Drift.",
            ["model", "model_version", "signal"],
            registry=worker.registry,
        )
        for worker in workers
    ]
    for gauge, score in zip(drift, (0.1, 0.3, 0.2), strict=True):
        gauge.labels("chat", "v1", "length").set(score)
    drift[0].labels("chat", "v1", "embedding").set(0.4)  # the only worker scoring it yet
    for worker in workers[1:]:
        worker.shared.publish()
    scrape = workers[0].shared.render()
    labels = {"model": "chat", "model_version": "v1"}
    length = _value(scrape, "inference_input_drift_score", signal="length", **labels)
    assert abs(length - 0.2) < 1e-12
    assert _value(scrape, "inference_input_drift_score", signal="embedding", **labels) == 0.4
