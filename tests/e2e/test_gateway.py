"""`inferplane gateway` as a real process over two real `inferplane serve demo:tiny` replicas,
driven by the official openai client: chat through the gateway (streaming and not), the route
headers, and a replica SIGKILLed during a bounded load with zero failed requests."""

import contextlib
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.gateway_process import GatewayProcess, running_gateway
from tests.e2e.server_process import ServerProcess

pytestmark = pytest.mark.timeout(120)
REPLICA_ARGS = (
    "--served-model-name",
    "chat",
    "--max-model-len",
    "256",
    "--kv-cache-memory",
    "8MiB",
    "--max-num-seqs",
    "16",
)


@pytest.fixture(scope="module")
def replicas(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    logs = tmp_path_factory.mktemp("replicas")
    started = [
        ServerProcess([str(tiny_model_dir), *REPLICA_ARGS], logs / f"r{i}.log") for i in range(2)
    ]
    try:
        for replica in started:
            replica.wait_ready()
        yield started
    finally:
        for replica in started:
            replica.kill()


@pytest.fixture(scope="module")
def gateway(
    replicas: list[ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    folder = tmp_path_factory.mktemp("gateway")
    fleet = folder / "fleet.yaml"
    endpoints = ", ".join(replica.url for replica in replicas)
    fleet.write_text(
        "models: {chat: {source: demo:tiny}}\n"
        f"pools: {{main: {{model: chat, endpoints: [{endpoints}]}}}}\n"
        "routes: [{name: default, pool: main}]\n"
        "balancing: {policy: round_robin}\n"
    )
    with running_gateway(fleet, ["--health-interval", "0.5"], folder / "gw.log") as process:
        yield process


def _client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="dev", max_retries=0, timeout=30)


def test_chat_through_the_gateway(gateway: GatewayProcess) -> None:
    client = _client(gateway)
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hello"}], max_tokens=4
    )
    assert raw.headers["x-inferplane-route"] == "default:main"
    assert raw.headers["x-inferplane-replica"].startswith("main/127.0.0.1:")
    assert raw.parse().choices[0].message.content is not None
    stream = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=6, stream=True
    )
    chunks = list(stream)
    assert chunks and chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert [m.id for m in client.models.list()] == ["chat"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[], max_tokens=1)


def test_a_replica_killed_during_load_fails_no_request(
    gateway: GatewayProcess, replicas: list[ServerProcess]
) -> None:
    client = _client(gateway)

    def one(index: int) -> str:
        if index == 12:
            replicas[0].process.kill()  # SIGKILL while requests are in flight on it
        response = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": f"n{index}"}], max_tokens=8
        )
        return response.choices[0].finish_reason

    with ThreadPoolExecutor(max_workers=6) as pool:
        reasons = list(pool.map(one, range(60)))
    assert len(reasons) == 60  # every request answered: none raised
    metrics = httpx.get(f"{gateway.url}/metrics", timeout=5).text
    assert 'inference_request_total{model="chat",pool="main",status="200"}' in metrics
    assert 'status="502"' not in metrics and 'status="503"' not in metrics
    retried = re.search(r'^inference_gateway_retries_total\{pool="main"\} (\S+)$', metrics, re.M)
    assert retried is not None and float(retried.group(1)) >= 1  # the kill was felt, and hidden
    with contextlib.suppress(httpx.HTTPError):
        assert httpx.get(f"{gateway.url}/ready", timeout=5).status_code == 200
