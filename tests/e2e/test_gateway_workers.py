"""`inferplane gateway --workers 2` as one gateway: a key's rate limit holds across both worker
processes (each new connection may land on either), and so does a replica's slot count."""

import asyncio
from pathlib import Path

import httpx
import pytest

from inferplane.gateway.admission.auth import hash_key
from tests.e2e.gateway_process import GatewayProcess
from tests.gateway.upstreams import Behaviour, fake_replica

pytestmark = pytest.mark.timeout(120)
SECRET = "ip-limited-secret"
PER_MINUTE = 6
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def _fleet(folder: Path, replica: str) -> Path:
    (folder / "keys.yaml").write_text(
        "keys:\n"
        f'  - {{name: limited, key_hash: "{hash_key(SECRET)}", team: t,'
        f" requests_per_minute: {PER_MINUTE}}}\n"
    )
    fleet = folder / "fleet.yaml"
    fleet.write_text(
        "models: {chat: {source: demo:tiny}}\n"
        f"pools: {{main: {{model: chat, endpoints: [{replica}]}}}}\n"
        "routes: [{name: default, pool: main}]\n"
        "auth: {keys_file: keys.yaml}\n"
    )
    return fleet


async def _statuses(url: str, count: int) -> list[int]:
    """Requests one after another, each on a new connection (the kernel picks its worker)."""
    statuses = []
    headers = {"Authorization": f"Bearer {SECRET}", "Connection": "close"}
    for _ in range(count):
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            response = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
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
