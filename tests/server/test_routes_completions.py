import httpx


async def test_completions_with_several_prompts_and_n(client: httpx.AsyncClient) -> None:
    body = {
        "model": "tiny",
        "prompt": ["one", "two words"],
        "n": 2,
        "max_tokens": 2,
        "ignore_eos": True,
    }
    response = await client.post("/v1/completions", json=body)
    payload = response.json()
    assert response.status_code == 200
    assert payload["object"] == "text_completion"
    assert [c["index"] for c in payload["choices"]] == [0, 1, 2, 3]
    assert payload["usage"]["completion_tokens"] == 8


async def test_default_max_tokens_is_16(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/completions", json={"model": "tiny", "prompt": "hi", "ignore_eos": True}
    )
    assert response.json()["usage"]["completion_tokens"] == 16


async def test_token_id_prompt_and_logprobs(client: httpx.AsyncClient) -> None:
    body = {
        "model": "tiny",
        "prompt": [5, 6, 7],
        "max_tokens": 3,
        "logprobs": 1,
        "ignore_eos": True,
    }
    choice = (await client.post("/v1/completions", json=body)).json()["choices"][0]
    logprobs = choice["logprobs"]
    assert len(logprobs["tokens"]) == len(logprobs["token_logprobs"]) == 3
    assert logprobs["text_offset"][0] == 0


async def test_token_ids_beyond_the_vocabulary_are_400(client: httpx.AsyncClient) -> None:
    body = {"model": "tiny", "prompt": [10**9], "max_tokens": 1}
    response = await client.post("/v1/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "prompt"


async def test_echo_prepends_the_prompt(client: httpx.AsyncClient) -> None:
    body = {"model": "tiny", "prompt": "abc", "max_tokens": 1, "echo": True}
    choice = (await client.post("/v1/completions", json=body)).json()["choices"][0]
    assert choice["text"].startswith("abc")


async def test_streaming_completion(client: httpx.AsyncClient) -> None:
    body = {"model": "tiny", "prompt": "hello", "max_tokens": 3, "stream": True, "ignore_eos": True}
    response = await client.post("/v1/completions", json=body)
    chunks = [c for c in response.text.split("\n\n") if c]
    assert chunks[-1] == "data: [DONE]"
    assert '"finish_reason":"length"' in chunks[-2]


async def test_invalid_sampling_value_names_its_param(client: httpx.AsyncClient) -> None:
    body = {"model": "tiny", "prompt": "x", "presence_penalty": 9.0}
    response = await client.post("/v1/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "presence_penalty"


async def test_predict_simple_form(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/predict", json={"prompt": "hello", "max_tokens": 3})
    body = response.json()
    assert set(body) == {"output", "model", "model_version", "inference_time_ms", "usage"}
    assert body["model"] == "tiny"
    assert body["model_version"] == "v7"
    assert body["usage"]["completion_tokens"] == 3
