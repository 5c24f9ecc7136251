"""An app around the real engine on the tiny demo model (small KV budget, 256-token context)."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from inferplane.engine.core.config import EngineConfig
from inferplane.engine.front.async_engine import AsyncLLMEngine
from inferplane.server.app import create_app
from inferplane.server.state import ServerSettings, ServerState

MODEL = "tiny"
ADMIN_KEY = "admin-secret"
MAX_MODEL_LEN = 256


def tiny_engine(model_dir: Path, max_waiting: int = 64) -> AsyncLLMEngine:
    config = EngineConfig(
        model=str(model_dir),
        max_model_len=MAX_MODEL_LEN,
        kv_cache_bytes=8 * 1024 * 1024,
        max_num_seqs=16,
        max_waiting=max_waiting,
        device="cpu",
    )
    return AsyncLLMEngine.from_config(config, MODEL)


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Iterator[AsyncLLMEngine]:
    engine = tiny_engine(tiny_model_dir)
    yield engine
    asyncio.run(engine.shutdown())


@pytest.fixture
def state(engine: AsyncLLMEngine) -> ServerState:
    settings = ServerSettings(
        model_name=MODEL,
        admin_key=ADMIN_KEY,
        model_version="v7",
        max_body_bytes=64 * 1024,
        drain_timeout_s=5,
    )
    return ServerState(settings, engine=engine)


@pytest.fixture
async def client(state: ServerState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
        yield client
