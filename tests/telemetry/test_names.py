"""Every name a process publishes is in names.py, with labels from its allowed set."""

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from inferplane.engine.core.protocol import EngineStats
from inferplane.ledger.metrics import register_cost_metrics
from inferplane.server.metrics import ServerMetrics
from inferplane.telemetry import names


def _samples(text: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (sample.name, sample.labels)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def _assert_known(text: str) -> None:
    for name, labels in _samples(text):
        spec = names.family_of(name)
        assert spec is not None, f"{name} is published but not named in telemetry/names.py"
        extra = set(labels) - set(spec.labels) - {"le"}
        assert not extra, f"{name} carries labels {extra} outside {spec.labels}"


def _stats() -> EngineStats:
    return EngineStats(2, 3, 0.5, 10, 4, 1, 100, 50, 0, False)


def test_names_are_unique_and_counters_have_no_total_suffix() -> None:
    assert len({spec.name for spec in names.SPECS}) == len(names.SPECS)
    assert all(not spec.name.endswith("_total") for spec in names.SPECS if spec.kind == "counter")
    assert all(spec.buckets for spec in names.SPECS if spec.kind == "histogram")


def test_the_design_families_are_named() -> None:
    series = names.known_series()
    for name in (
        "inference_request_duration_seconds_bucket",
        "inference_time_to_first_token_seconds_bucket",
        "inference_tokens_per_second_bucket",
        "inference_queue_depth",
        "inference_gpu_utilization_percent",
        "inference_gpu_memory_used_bytes",
        "inference_cache_hit_rate",
        "inference_request_total",
        "inference_cost_dollars_total",
        "inference_model_load_seconds_count",
        "vllm:num_requests_running",
        "DCGM_FI_DEV_GPU_UTIL",
    ):
        assert name in series


def test_the_model_servers_metrics_are_all_named() -> None:
    metrics = ServerMetrics()
    metrics.watch_engine("m", _stats)
    metrics.observe_generation("m", ttft_s=0.1, e2e_s=1.1, output_tokens=11)
    metrics.count_request("m", 200)
    metrics.record_load("m", 3.0)
    _assert_known(metrics.render().decode())


def test_the_model_servers_buckets_are_the_shared_ones() -> None:
    metrics = ServerMetrics()
    metrics.observe_generation("m", ttft_s=0.1, e2e_s=1.1, output_tokens=11)
    metrics.record_load("m", 3.0)
    for family in text_string_to_metric_families(metrics.render().decode()):
        spec = names.BY_NAME.get(family.name)
        if family.type != "histogram" or spec is None:
            continue
        bounds = [float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket")]
        assert tuple(bounds[:-1]) == spec.buckets, family.name


def test_the_gateways_metrics_are_all_named() -> None:
    gateway_metrics = pytest.importorskip("inferplane.gateway.books.metrics")
    metrics = gateway_metrics.GatewayMetrics()
    metrics.observe("m", "pool", 200, 0.5)
    metrics.ttft.labels("m", "pool").observe(0.1)
    metrics.decisions.labels("default").inc()
    metrics.retries.labels("pool").inc()
    metrics.ejections.labels("pool").inc()
    metrics.replicas_ready.labels("pool").set(1)
    _assert_known(metrics.render().decode())


def test_the_ledgers_metrics_are_all_named() -> None:
    registry = CollectorRegistry()
    cost = register_cost_metrics(registry)
    cost.cost.labels(model="m", team="t").inc(0.5)
    cost.budget_events.labels(scope="team", period="day", level="soft").inc()
    _assert_known(generate_latest(registry).decode())


def test_constructors_use_the_spec_and_refuse_unknown_labels() -> None:
    registry = CollectorRegistry()
    histogram = names.histogram(names.TIME_TO_FIRST_TOKEN, registry, labels=["model"])
    histogram.labels("m").observe(0.03)
    names.counter(names.REQUESTS, registry).labels("m", "p", "200").inc()
    names.gauge(names.QUEUE_DEPTH, registry).labels("m").set(2)
    _assert_known(generate_latest(registry).decode())
    with pytest.raises(ValueError, match="takes labels from"):
        names.gauge(names.QUEUE_DEPTH, CollectorRegistry(), labels=["user"])


def test_family_of_maps_samples_to_families() -> None:
    assert names.family_of("inference_request_total") is names.REQUESTS
    assert names.family_of("vllm:e2e_request_latency_seconds_bucket") is names.VLLM_E2E
    assert names.family_of("inference_request") is None  # counters show only with _total
