import base64
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from inferplane.engine.compute.embedding import AsyncEmbeddingModel, EmbeddingModel
from inferplane.server.app import create_app
from inferplane.server.state import ServerSettings, ServerState


@pytest.fixture(scope="module")
def minilm(minilm_dir: Path) -> EmbeddingModel:
    return EmbeddingModel.load(minilm_dir, device="cpu")


@pytest.fixture
async def embed_client(minilm: EmbeddingModel) -> AsyncIterator[httpx.AsyncClient]:
    settings = ServerSettings(model_name=None, embedding_model_name="minilm")
    state = ServerState(settings, embedder=AsyncEmbeddingModel(minilm))
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
        yield client


async def test_embeddings_have_openai_shape(embed_client: httpx.AsyncClient) -> None:
    response = await embed_client.post(
        "/v1/embeddings", json={"model": "minilm", "input": ["a cat", "a dog"]}
    )
    body = response.json()
    assert response.status_code == 200
    assert body["object"] == "list"
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert len(body["data"][0]["embedding"]) == 384
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0


async def test_base64_matches_floats(embed_client: httpx.AsyncClient) -> None:
    floats = await embed_client.post("/v1/embeddings", json={"model": "minilm", "input": "hi"})
    packed = await embed_client.post(
        "/v1/embeddings", json={"model": "minilm", "input": "hi", "encoding_format": "base64"}
    )
    raw = base64.b64decode(packed.json()["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert decoded == pytest.approx(floats.json()["data"][0]["embedding"], abs=1e-6)


async def test_dimensions_and_errors(embed_client: httpx.AsyncClient) -> None:
    cut = await embed_client.post(
        "/v1/embeddings", json={"model": "minilm", "input": "hi", "dimensions": 64}
    )
    too_many = await embed_client.post(
        "/v1/embeddings", json={"model": "minilm", "input": "hi", "dimensions": 999}
    )
    too_long = await embed_client.post(
        "/v1/embeddings", json={"model": "minilm", "input": "word " * 600}
    )
    empty = await embed_client.post("/v1/embeddings", json={"model": "minilm", "input": ""})
    wrong = await embed_client.post(
        "/v1/chat/completions",
        json={"model": "minilm", "messages": [{"role": "user", "content": "x"}]},
    )
    assert len(cut.json()["data"][0]["embedding"]) == 64
    assert too_many.json()["error"]["param"] == "dimensions"
    assert too_long.json()["error"]["code"] == "context_length_exceeded"
    assert empty.status_code == 400
    assert wrong.status_code == 400
