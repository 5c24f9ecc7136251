from inferplane.gateway.routing.scrape import ScrapedLoad, parse_metrics

OURS = """# HELP vllm:num_requests_running Requests in the running batch.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="chat"} 3.0
vllm:num_requests_waiting{model_name="chat"} 5.0
vllm:gpu_cache_usage_perc{model_name="chat"} 0.25
vllm:kv_cache_usage_perc{model_name="chat"} 0.25
inference_queue_depth{model="chat"} 5.0
"""


def test_ours_and_sums_over_models() -> None:
    two = OURS + 'vllm:num_requests_waiting{model_name="other"} 1\n'
    assert parse_metrics(two) == ScrapedLoad(waiting=6, running=3, kv_usage=0.25)


def test_newer_vllm_name_and_missing_series() -> None:
    text = 'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5 1700000000\nvllm:bad{x="1"}\n'
    assert parse_metrics(text) == ScrapedLoad(kv_usage=0.5)
    assert parse_metrics("") == ScrapedLoad()
