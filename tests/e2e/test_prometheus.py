"""A real Prometheus scrapes a real `inferplane serve demo:tiny` replica and a real gateway on
127.0.0.1 every second, with the shipped alert rules loaded: the expected series arrive, every
name scraped is one telemetry/names.py knows, and rules evaluate (one fires)."""

import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from inferplane.telemetry import names
from inferplane.telemetry.artifacts import install_artifacts
from tests.e2e.gateway_process import GatewayProcess, running_gateway
from tests.e2e.prometheus_process import PrometheusProcess, prometheus_binary, running_prometheus
from tests.e2e.server_process import ServerProcess, running_server

pytestmark = [
    pytest.mark.timeout(150),
    pytest.mark.skipif(
        prometheus_binary() is None,
        reason="prometheus is not installed: scripts/ci/prometheus.sh installs it",
    ),
]
WAIT_S = 30.0
PROMETHEUS_OWN = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})  # written by Prometheus itself
REQUESTS = 4
E2E_RULES = """groups:
  - name: e2e
    rules:
      - alert: InferplaneE2eScraped
        expr: vllm:num_requests_running >= 0
        labels: {severity: info}
        annotations: {summary: the replica is scraped}
"""
REPLICA_ARGS = (
    "--served-model-name",
    "chat",
    "--max-model-len",
    "256",
    "--kv-cache-memory",
    "8MiB",
)


@pytest.fixture(scope="module")
def replica(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("replica")
    with running_server([str(tiny_model_dir), *REPLICA_ARGS], folder / "replica.log") as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    replica: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    folder = tmp_path_factory.mktemp("gateway")
    fleet = folder / "fleet.yaml"
    fleet.write_text(
        "models: {chat: {source: demo:tiny}}\n"
        f"pools: {{main: {{model: chat, endpoints: [{replica.url}]}}}}\n"
        "routes: [{name: default, pool: main}]\n"
    )
    with running_gateway(fleet, ["--health-interval", "0.5"], folder / "gateway.log") as process:
        yield process


@pytest.fixture(scope="module")
def prometheus(
    replica: ServerProcess, gateway: GatewayProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusProcess]:
    folder = tmp_path_factory.mktemp("prometheus")
    rules = [p for p in install_artifacts(folder / "rules") if p.suffix == ".yaml"]
    (folder / "e2e.yaml").write_text(E2E_RULES)
    jobs = {"replica": [f"127.0.0.1:{replica.port}"], "gateway": [f"127.0.0.1:{gateway.port}"]}
    with running_prometheus(folder, jobs, [*rules, folder / "e2e.yaml"]) as server:
        for index in range(REQUESTS):
            response = httpx.post(
                f"{gateway.url}/v1/chat/completions",
                json={
                    "model": "chat",
                    "messages": [{"role": "user", "content": f"hi {index}"}],
                    "max_tokens": 4,
                },
                timeout=30,
            )
            assert response.status_code == 200, response.text
        yield server


def _eventually(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"after {WAIT_S}s: {what}")
        time.sleep(0.25)


def _value(prometheus: PrometheusProcess, query: str) -> float:
    result = prometheus.api("query", query=query)["result"]
    return float(result[0]["value"][1]) if result else -1.0


def _at_least(prometheus: PrometheusProcess, query: str, minimum: float) -> bool:
    return _value(prometheus, query) >= minimum


def test_both_targets_are_up(prometheus: PrometheusProcess) -> None:
    for job in ("replica", "gateway"):
        _eventually(partial(_at_least, prometheus, f'up{{job="{job}"}}', 1), f"{job} up")


def test_the_expected_series_arrive(prometheus: PrometheusProcess) -> None:
    expected = {
        'sum(inference_request_total{job="gateway",model="chat",status="200"})': REQUESTS,
        'sum(inference_request_total{job="replica",model="chat",status="200"})': REQUESTS,
        'sum(vllm:time_to_first_token_seconds_count{job="replica"})': REQUESTS,
        'sum(inference_request_duration_seconds_count{job="gateway",pool="main"})': REQUESTS,
        'sum(inference_gateway_replicas_ready{job="gateway",pool="main"})': 1,
        'count(vllm:num_requests_running{job="replica",model_name="chat"})': 1,
        'count(inference_model_load_seconds_count{job="replica"})': 1,
    }
    for query, at_least in expected.items():
        _eventually(partial(_at_least, prometheus, query, at_least), query)


def test_every_scraped_name_is_known(prometheus: PrometheusProcess) -> None:
    _eventually(lambda: _value(prometheus, 'count(up{job=~"replica|gateway"} == 1)') == 2, "up")
    scraped = set(
        prometheus.api("label/__name__/values", **{"match[]": '{job=~"replica|gateway"}'})
    )
    ours = {n for n in scraped if n not in PROMETHEUS_OWN and not n.startswith("scrape_")}
    assert "vllm:generation_tokens_total" in ours
    assert ours <= names.known_series(), sorted(ours - names.known_series())


def test_the_rules_load_and_evaluate(prometheus: PrometheusProcess) -> None:
    def firing() -> bool:
        alerts = prometheus.api("alerts")["alerts"]
        return any(
            a["labels"]["alertname"] == "InferplaneE2eScraped" and a["state"] == "firing"
            for a in alerts
        )

    _eventually(firing, "the e2e rule fires")
    groups = {g["name"]: g for g in prometheus.api("rules")["groups"]}
    assert {"inferplane-gpu", "inferplane-serving", "e2e"} <= set(groups)
    for group in groups.values():
        for rule in group["rules"]:
            assert rule["health"] == "ok", rule  # every shipped expression evaluates cleanly
    serving = {r["name"]: r for r in groups["inferplane-serving"]["rules"]}
    assert serving["InferplaneModelLoadSlow"]["state"] == "inactive"  # demo:tiny loads in seconds
