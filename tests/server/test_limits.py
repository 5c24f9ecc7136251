from collections.abc import AsyncIterator

import httpx


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    prompt = "x" * (65 * 1024)
    response = await client.post("/v1/completions", json={"model": "tiny", "prompt": prompt})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


async def test_chunked_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(70):
            yield b"x" * 1024

    response = await client.post("/v1/completions", content=chunks())
    assert response.status_code == 413


async def test_body_under_the_limit_passes(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/completions", json={"model": "tiny", "prompt": "ok", "max_tokens": 1}
    )
    assert response.status_code == 200
