"""The gateway's books end to end: a real gateway in front of a real `inferplane serve
demo:tiny` replica writes one usage row per request into a SQLite ledger (real tokens, a
nonzero cost), `inferplane cost report` reads them, and key budgets warn (soft) and refuse
(hard, 429 budget_exceeded) as the money is spent."""

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from inferplane.gateway.admission.auth import hash_key
from inferplane.ledger.store import UsageStore
from inferplane.ledger.usage import UsageRecord
from tests.e2e.gateway_process import GatewayProcess, running_gateway
from tests.e2e.server_process import running_server

pytestmark = pytest.mark.timeout(180)
KEYS = {"payer": "ip-payer-secret", "capped": "ip-capped-secret", "warned": "ip-warned-secret"}
REPLICA_ARGS = ("--served-model-name", "chat", "--max-model-len", "256")
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


def _fleet(folder: Path, replica: str) -> Path:
    keys = folder / "keys.yaml"
    keys.write_text(
        "keys:\n"
        f'  - {{name: payer, key_hash: "{hash_key(KEYS["payer"])}", team: research}}\n'
        f'  - {{name: capped, key_hash: "{hash_key(KEYS["capped"])}", team: ops,'
        " budget: {period: day, hard_usd: 0.000001}}\n"
        f'  - {{name: warned, key_hash: "{hash_key(KEYS["warned"])}", team: ops,'
        " budget: {period: day, soft_usd: 0.0}}\n"
    )
    fleet = folder / "fleet.yaml"
    fleet.write_text(
        "models: {chat: {source: demo:tiny}}\n"
        f"pools: {{main: {{model: chat, endpoints: [{replica}], resources: {{gpu: L4}}}}}}\n"
        "routes: [{name: default, pool: main}]\n"
        "pricing: {provider: runpod, gpu_hourly_usd: {L4: 3600}}\n"  # $1 a GPU-second
        f"ledger: {{url: 'sqlite:///{folder / 'ledger.db'}'}}\n"
        "auth: {keys_file: keys.yaml}\n"
    )
    return fleet


@pytest.fixture(scope="module")
def gateway(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    folder = tmp_path_factory.mktemp("books")
    replica_args = [str(tiny_model_dir), *REPLICA_ARGS]
    with (
        running_server(replica_args, folder / "replica.log") as replica,
        running_gateway(_fleet(folder, replica.url), ["--ledger"], folder / "gw.log") as gw,
    ):
        yield gw


def _client(gateway: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEYS[key], max_retries=0)


def _rows(url: str, key: str, count: int) -> list[UsageRecord]:
    deadline = time.monotonic() + 20
    while True:
        with UsageStore(url) as store:
            rows = [r for r in store.records() if r.key == key]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def _ledger_url(gateway: GatewayProcess) -> str:
    return f"sqlite:///{gateway.log_path.parent / 'ledger.db'}"


def test_requests_with_a_key_become_usage_rows_with_tokens_and_cost(
    gateway: GatewayProcess,
) -> None:
    client = _client(gateway, "payer")
    replies = [client.chat.completions.create(**CHAT, user="u-42") for _ in range(3)]  # type: ignore[call-overload]
    rows = _rows(_ledger_url(gateway), "payer", 3)
    assert len(rows) == 3
    by_tokens = sorted((r.prompt_tokens, r.completion_tokens) for r in rows)
    expected = sorted((c.usage.prompt_tokens, c.usage.completion_tokens) for c in replies)
    assert by_tokens == expected
    for row in rows:
        assert row.team == "research" and row.pool == "main" and row.gpu_type == "L4"
        assert row.cost_micro_usd > 0 and row.status == "ok"
        assert row.user_hash and row.user_hash != "u-42"
    command = ["cost", "report", "--db", _ledger_url(gateway), "--by", "team", "--format", "json"]
    report = subprocess.run(
        [sys.executable, "-m", "inferplane", *command],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    teams = {row["group"]: row for row in json.loads(report.stdout)["rows"]}
    assert teams["research"]["requests"] == 3
    assert teams["research"]["completion_tokens"] == sum(r.completion_tokens for r in rows)
    assert teams["research"]["spend_usd"] > 0


def test_a_hard_budget_refuses_once_spent(gateway: GatewayProcess) -> None:
    client = _client(gateway, "capped")
    with pytest.raises(openai.RateLimitError) as refused:
        for _ in range(20):
            client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
            time.sleep(0.3)  # the books settle a request's cost within a sweep
    error = refused.value
    assert error.code == "budget_exceeded"
    assert int(error.response.headers["retry-after"]) >= 1


def test_a_soft_budget_warns_in_a_header(gateway: GatewayProcess) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=CHAT,
        headers={"authorization": f"Bearer {KEYS['warned']}", "x-request-id": "warn-1"},
        timeout=60,
    )
    assert response.status_code == 200
    assert "key=warned" in response.headers["x-budget-warning"]
    assert response.headers["x-request-id"] == "warn-1"
    metrics = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    assert 'inference_budget_events_total{level="soft",period="day",scope="key"}' in metrics
    assert 'inference_cost_dollars_total{model="chat",team="research"}' in metrics
