import httpx

from inferplane.server.state import ServerSettings, ServerState


async def test_health_ready_and_models(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/ready")).status_code == 200
    models = (await client.get("/v1/models")).json()
    assert models["object"] == "list"
    assert models["data"][0]["id"] == "tiny"
    assert models["data"][0]["max_model_len"] == 256


async def test_not_ready_while_loading() -> None:
    from inferplane.server.app import create_app  # noqa: PLC0415

    state = ServerState(ServerSettings(model_name="tiny"))
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
        ready = await client.get("/ready")
        call = await client.post("/v1/completions", json={"model": "tiny", "prompt": "x"})
    assert ready.status_code == 503
    assert ready.json()["status"] == "loading"
    assert call.status_code == 503


async def test_metrics_after_a_request(client: httpx.AsyncClient) -> None:
    await client.post("/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 3})
    await client.post("/v1/completions", json={"model": "nope", "prompt": "x"})
    text = (await client.get("/metrics")).text
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:gpu_cache_usage_perc",
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total",
        "vllm:num_preemptions_total",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:time_per_output_token_seconds_bucket",
        "vllm:e2e_request_latency_seconds_bucket",
        "inference_request_duration_seconds_bucket",
        "inference_time_to_first_token_seconds_bucket",
        "inference_tokens_per_second_bucket",
        "inference_queue_depth",
        "inference_cache_hit_rate",
    ):
        assert name in text, name
    assert 'inference_request_total{model="tiny",status="200"} 1.0' in text
    assert 'inference_request_total{model="unknown",status="404"} 1.0' in text
