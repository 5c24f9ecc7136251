"""Feedback end to end: a real gateway (with keys and a SQLite ledger) in front of a real
`inferplane serve demo:tiny` replica. A rating through `POST /v1/feedback` with the caller's
key, a regeneration (the same request sent again) and an abandoned stream are stored in the
ledger beside the usage records, with the model version that served them; another key may
not rate the request, and no key is 401."""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from inferplane.gateway.admission.auth import hash_key
from inferplane.ledger.feedback import FeedbackRecord
from inferplane.ledger.store import UsageStore
from inferplane.ledger.usage import UsageRecord
from tests.e2e.gateway_process import GatewayProcess, running_gateway
from tests.e2e.server_process import running_server

pytestmark = pytest.mark.timeout(180)
KEYS = {"alice": "ip-alice-secret", "bob": "ip-bob-secret"}
REPLICA_ARGS = ("--served-model-name", "chat", "--max-model-len", "256")
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


def _fleet(folder: Path, replica: str) -> Path:
    keys = folder / "keys.yaml"
    keys.write_text(
        "keys:\n"
        f'  - {{name: alice, key_hash: "{hash_key(KEYS["alice"])}", team: research}}\n'
        f'  - {{name: bob, key_hash: "{hash_key(KEYS["bob"])}", team: ops}}\n'
    )
    fleet = folder / "fleet.yaml"
    fleet.write_text(
        "models: {chat: {source: demo:tiny, version: v7}}\n"
        f"pools: {{main: {{model: chat, endpoints: [{replica}]}}}}\n"
        "routes: [{name: default, pool: main}]\n"
        f"ledger: {{url: 'sqlite:///{folder / 'ledger.db'}'}}\n"
        "auth: {keys_file: keys.yaml}\n"
    )
    return fleet


@pytest.fixture(scope="module")
def gateway(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    folder = tmp_path_factory.mktemp("feedback")
    replica_args = [str(tiny_model_dir), *REPLICA_ARGS]
    with (
        running_server(replica_args, folder / "replica.log") as replica,
        running_gateway(_fleet(folder, replica.url), ["--ledger"], folder / "gw.log") as gw,
    ):
        yield gw


def _feedback_rows(gateway: GatewayProcess, count: int) -> list[FeedbackRecord]:
    url = f"sqlite:///{gateway.log_path.parent / 'ledger.db'}"
    deadline = time.monotonic() + 20
    while True:
        with UsageStore(url) as store:
            rows = store.feedback()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[key]}"}


def test_ratings_regenerations_and_abandoned_streams_reach_the_ledger(
    gateway: GatewayProcess,
) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEYS["alice"], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(**CHAT, user="u-1")  # type: ignore[call-overload]
    first = raw.headers["x-request-id"]
    version = raw.headers.get("x-model-version", "")
    client.chat.completions.create(**CHAT, user="u-1")  # type: ignore[call-overload]
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        answer = http.post(
            "/v1/feedback",
            json={"request_id": first, "rating": 1, "text": "wrong answer"},
            headers=_auth("alice"),
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["stored"] is True
        other = http.post(
            "/v1/feedback", json={"request_id": first, "thumbs": "up"}, headers=_auth("bob")
        )
        assert other.status_code == 403
        assert (
            http.post("/v1/feedback", json={"request_id": first, "thumbs": "up"}).status_code == 401
        )
        bad = http.post(
            "/v1/feedback", json={"request_id": first, "rating": 9}, headers=_auth("alice")
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "rating"
        stream = {**CHAT, "stream": True, "max_tokens": 200, "ignore_eos": True}
        with http.stream("POST", "/v1/chat/completions", json=stream, headers=_auth("alice")) as s:
            next(s.iter_raw())  # the first bytes, then the client goes
        metrics = http.get("/metrics").text
    rows = _feedback_rows(gateway, 3)
    by_kind = {row.kind: row for row in rows}
    assert set(by_kind) == {"rating", "regeneration", "abandoned"}
    rating = by_kind["rating"]
    assert (rating.value, rating.text, rating.key, rating.team) == (
        1.0,
        "wrong answer",
        "alice",
        "research",
    )
    assert by_kind["regeneration"].request_id == first
    for row in rows:
        assert row.model == "chat" and row.model_version == version and row.negative
    assert "inference_feedback_events_total" in metrics
    # the ledger writer found the regeneration; the gateway counts it from the writer's totals
    assert _regenerations_counted(gateway, version) == 1


def _regenerations_counted(gateway: GatewayProcess, version: str) -> float:
    labels = {"model": "chat", "model_version": version, "kind": "regeneration"}
    deadline = time.monotonic() + 20
    while True:
        text = httpx.get(f"{gateway.url}/metrics", timeout=10).text
        counted = sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "inference_feedback_events_total"
            and all(sample.labels.get(k) == v for k, v in labels.items())
        )
        if counted or time.monotonic() > deadline:
            return counted
        time.sleep(0.3)


def test_the_replicas_confidence_reaches_the_usage_record_and_the_metrics(
    gateway: GatewayProcess,
) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEYS["bob"], max_retries=0)
    reply = client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    confidence = reply.usage.model_extra["confidence"]
    assert confidence["mean_logprob"] < 0 and confidence["tokens"] == 4
    url = f"sqlite:///{gateway.log_path.parent / 'ledger.db'}"
    deadline = time.monotonic() + 20
    rows: list[UsageRecord] = []
    while not rows and time.monotonic() < deadline:
        time.sleep(0.2)
        with UsageStore(url) as store:
            rows = [r for r in store.records() if r.key == "bob"]
    assert rows and rows[0].mean_logprob == pytest.approx(confidence["mean_logprob"])
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'inference_completion_negative_mean_logprob_count{model="chat"' in metrics
