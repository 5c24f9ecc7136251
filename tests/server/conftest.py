"""An app around a generation engine on the tiny demo model, plus the MiniLM embedder."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from inferplane.engine.tokenizer import Tokenizer
from inferplane.server.app import create_app
from inferplane.server.state import ServerSettings, ServerState
from tests.server.fake_engine import EchoEngine

MODEL = "tiny"
ADMIN_KEY = "admin-secret"


@pytest.fixture
def engine(tiny_model_dir: Path) -> Iterator[EchoEngine]:
    yield EchoEngine(Tokenizer.from_dir(tiny_model_dir))


@pytest.fixture
def state(engine: EchoEngine) -> ServerState:
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
