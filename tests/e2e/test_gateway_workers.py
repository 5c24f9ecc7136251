"""`inferplane gateway --workers 2` as one gateway: a key's rate limit holds across both worker
processes (each new connection may land on either), and so does a replica's slot count; a
request sent again is a regeneration whichever worker took either try; and /metrics counts
every worker's requests whichever worker a scrape reaches, as does the status page at /ui."""

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from inferplane.gateway.admission.auth import hash_key
from inferplane.ledger.feedback import FeedbackRecord
from inferplane.ledger.store import UsageStore
from inferplane.telemetry.worker_metrics import SNAPSHOT_S
from tests.e2e.gateway_process import GatewayProcess
from tests.gateway.upstreams import Behaviour, fake_replica

pytestmark = pytest.mark.timeout(120)
SECRET = "ip-limited-secret"
PER_MINUTE = 6
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def _fleet(folder: Path, replica: str, per_minute: int | None = PER_MINUTE) -> Path:
    limit = "" if per_minute is None else f", requests_per_minute: {per_minute}"
    (folder / "keys.yaml").write_text(
        f'keys:\n  - {{name: limited, key_hash: "{hash_key(SECRET)}", team: t{limit}}}\n'
    )
    fleet = folder / "fleet.yaml"
    fleet.write_text(
        "models: {chat: {source: demo:tiny}}\n"
        f"pools: {{main: {{model: chat, endpoints: [{replica}]}}}}\n"
        "routes: [{name: default, pool: main}]\n"
        "auth: {keys_file: keys.yaml}\n"
        f"ledger: {{url: 'sqlite:///{folder / 'ledger.db'}'}}\n"
    )
    return fleet


async def _statuses(url: str, count: int, body: dict[str, Any] = CHAT) -> list[int]:
    """Requests one after another, each on a new connection (the kernel picks its worker)."""
    statuses = []
    headers = {"Authorization": f"Bearer {SECRET}", "Connection": "close"}
    for _ in range(count):
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            response = await client.post("/v1/chat/completions", json=body, headers=headers)
            statuses.append(response.status_code)
    return statuses


async def test_a_keys_rate_limit_holds_across_two_workers(tmp_path: Path) -> None:
    async with fake_replica(Behaviour()) as replica:
        fleet = _fleet(tmp_path, replica)
        gateway = GatewayProcess(fleet, ["--workers", "2"], tmp_path / "gateway.log")
        try:
            await asyncio.to_thread(gateway.wait_up)
            await asyncio.sleep(2)  # the second worker listens too
            statuses = await _statuses(gateway.url, 4 * PER_MINUTE)
        finally:
            await asyncio.to_thread(gateway.stop)
    assert set(statuses) <= {200, 429}, gateway.log()
    assert PER_MINUTE <= statuses.count(200) <= PER_MINUTE + 1  # + a refill while it ran


def _regenerations(url: str, count: int) -> list[FeedbackRecord]:
    deadline = time.monotonic() + 20
    while True:
        with UsageStore(url) as store:
            rows = [row for row in store.feedback() if row.kind == "regeneration"]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


async def test_a_regeneration_is_found_whichever_worker_served_each_try(tmp_path: Path) -> None:
    tries = 6  # on new connections: some pairs of tries are split over the two workers
    async with fake_replica(Behaviour()) as replica:
        fleet = _fleet(tmp_path, replica, per_minute=None)
        gateway = GatewayProcess(fleet, ["--workers", "2", "--ledger"], tmp_path / "gateway.log")
        try:
            await asyncio.to_thread(gateway.wait_up)
            await asyncio.sleep(2)  # the second worker listens too
            statuses = await _statuses(gateway.url, tries, {**CHAT, "user": "u-1"})
            url = f"sqlite:///{tmp_path / 'ledger.db'}"
            rows = await asyncio.to_thread(_regenerations, url, tries - 1)
        finally:
            await asyncio.to_thread(gateway.stop)
    assert statuses == [200] * tries, gateway.log()
    assert len(rows) == tries - 1 and len({row.request_id for row in rows}) == tries - 1
    assert {(row.key, row.model) for row in rows} == {("limited", "chat")}


async def _requests_counted(url: str) -> float:
    """inference_request_total summed over its series, as one scrape on a new connection sees."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        text = (await client.get("/metrics", headers={"Connection": "close"})).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "inference_request"
        for sample in family.samples
        if sample.name == "inference_request_total"
    )


async def _requests_on_the_page(url: str) -> float | None:
    """The status page's request total, as one poll on a new connection sees it."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.get("/ui/status.json", headers={"Connection": "close"})
    total: float | None = response.json()["totals"]["requests"]
    return total


async def test_every_scrape_and_status_page_counts_both_workers_requests(tmp_path: Path) -> None:
    sent = 8
    async with fake_replica(Behaviour()) as replica:
        fleet = _fleet(tmp_path, replica, per_minute=None)
        gateway = GatewayProcess(fleet, ["--workers", "2"], tmp_path / "gateway.log")
        try:
            await asyncio.to_thread(gateway.wait_up)
            await asyncio.sleep(2)  # the second worker listens too
            statuses = await _statuses(gateway.url, sent)
            await _requests_counted(gateway.url)  # Prometheus scrapes all along
            # every worker has written a metrics snapshot since, and shared its page totals
            # (each samples them every second)
            await asyncio.sleep(SNAPSHOT_S + 1)
            counted = [await _requests_counted(gateway.url) for _ in range(6)]
            shown = [await _requests_on_the_page(gateway.url) for _ in range(6)]
        finally:
            await asyncio.to_thread(gateway.stop)
    assert statuses == [200] * sent, gateway.log()
    assert counted == [sent] * 6  # not one worker's share, whichever answered
    assert shown == [sent] * 6
