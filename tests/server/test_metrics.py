from inferplane.engine.protocol import EngineStats
from inferplane.server.metrics import ServerMetrics


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
