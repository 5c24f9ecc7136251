import logging
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from inferplane.engine.core.protocol import EngineStats
from inferplane.server.metrics import ServerMetrics
from inferplane.telemetry import names
from inferplane.telemetry.gpu import NvmlError


def _stats() -> EngineStats:
    return EngineStats(
        num_running=2,
        num_waiting=3,
        kv_usage=0.5,
        prefix_cache_queries=10,
        prefix_cache_hits=4,
        num_preemptions=1,
        prompt_tokens_total=100,
        generation_tokens_total=50,
        kv_evictions=0,
        sleeping=False,
    )


def test_engine_stats_become_vllm_and_inference_series() -> None:
    metrics = ServerMetrics()
    metrics.watch_engine("m", _stats)
    text = metrics.render().decode()
    assert 'vllm:num_requests_waiting{model_name="m"} 3.0' in text
    assert 'vllm:prompt_tokens_total{model_name="m"} 100.0' in text
    assert 'inference_cache_hit_rate{model="m"} 0.4' in text
    assert 'inference_queue_depth{model="m"} 3.0' in text


def test_generation_observations() -> None:
    metrics = ServerMetrics()
    metrics.observe_generation("m", ttft_s=0.1, e2e_s=1.1, output_tokens=11)
    text = metrics.render().decode()
    assert 'vllm:time_per_output_token_seconds_sum{model_name="m"} 0.1' in text
    assert 'inference_tokens_per_second_sum{model="m"} 10.0' in text


def test_two_instances_do_not_share_series() -> None:
    first, second = ServerMetrics(), ServerMetrics()
    first.count_request("m", 200)
    assert "inference_request_total{" not in second.render().decode()


class NoGpu:
    """NVML on a host without a GPU: every call fails; counts how often it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def fail(*_: Any) -> Any:
            self.calls += 1
            raise NvmlError("NVML Shared Library Not Found")

        return fail


def test_no_gpu_is_said_once_and_costs_nothing_per_scrape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics, nvml = ServerMetrics(), NoGpu()
    with caplog.at_level(logging.INFO, logger="inferplane.telemetry.gpu"):
        metrics.watch_gpus(nvml)
        texts = [metrics.render().decode() for _ in range(3)]
    assert nvml.calls == 1
    assert len([r for r in caplog.records if "no NVIDIA GPU" in r.getMessage()]) == 1
    assert not any("DCGM_" in text or "inference_gpu" in text for text in texts)


def test_every_published_name_comes_from_the_telemetry_table() -> None:
    metrics = ServerMetrics()
    metrics.watch_engine("m", _stats)
    metrics.observe_generation("m", ttft_s=0.1, e2e_s=1.1, output_tokens=11)
    metrics.count_request("m", 200)
    metrics.record_load("m", 1.5)
    families = list(text_string_to_metric_families(metrics.render().decode()))
    for family in families:
        spec = names.family_of(family.samples[0].name)
        assert spec is not None, family.name
        assert family.documentation == spec.help
    assert "inference_model_load_seconds" in {f.name for f in families}
