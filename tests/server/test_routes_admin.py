import httpx
import pytest

from tests.server.conftest import ADMIN_KEY

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def test_admin_needs_a_key(client: httpx.AsyncClient) -> None:
    assert (await client.post("/admin/sleep")).status_code == 401
    wrong = await client.post("/admin/sleep", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert wrong.json()["error"]["type"] == "permission_error"


async def test_sleep_and_wake(client: httpx.AsyncClient) -> None:
    slept = await client.post("/admin/sleep", headers=AUTH)
    assert slept.json()["sleeping"] is True
    assert (await client.get("/ready")).status_code == 503
    refused = await client.post("/v1/completions", json={"model": "tiny", "prompt": "x"})
    assert refused.status_code == 503
    woken = await client.post("/admin/wake", headers={"X-Admin-Key": ADMIN_KEY})
    assert woken.json()["sleeping"] is False
    assert (await client.get("/ready")).status_code == 200


async def test_drain_turns_ready_and_api_to_503(client: httpx.AsyncClient) -> None:
    drained = await client.post("/admin/drain", headers=AUTH, json={"timeout_s": 1})
    assert drained.json()["draining"] is True
    assert (await client.get("/ready")).status_code == 503
    refused = await client.post("/v1/completions", json={"model": "tiny", "prompt": "x"})
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "draining"
    assert (await client.get("/health")).status_code == 200


@pytest.mark.parametrize("path", ["/admin/sleep", "/admin/wake", "/admin/drain"])
async def test_admin_disabled_without_a_key(client: httpx.AsyncClient, state, path) -> None:  # type: ignore[no-untyped-def]
    state.settings = type(state.settings)(model_name="tiny")
    assert (await client.post(path, headers=AUTH)).status_code == 403
