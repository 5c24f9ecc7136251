"""The status page under `inferplane up`, in headless Chromium: the same gateway builder as
`inferplane gateway`, so /ui is served beside /admin/fleet, and it shows the pool and the
replica that `up` started itself, after real traffic."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from inferplane.control.actuators.local import free_port
from tests.e2e.test_status_page import _chromium, _traffic

pytestmark = pytest.mark.timeout(180)
FLEET = """
models:
  chat: {source: demo:tiny, dtype: float32, max_model_len: 256}
pools:
  main: {model: chat, replicas: {min: 1, max: 1}}
routes:
  - {name: default, pool: main}
"""
READY_TIMEOUT_S = 60.0


def _fleet(url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{url}/admin/fleet", timeout=5).json()
    return body


def _wait_ready(url: str, process: "subprocess.Popen[bytes]", log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        with contextlib.suppress(httpx.HTTPError):
            if _fleet(url)["pools"][0]["ready"] == 1:
                return
        time.sleep(0.2)
    raise TimeoutError(log.read_text()[-3000:])


@pytest.fixture(scope="module")
def up_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("up")
    fleet = folder / "fleet.yaml"
    fleet.write_text(FLEET)
    port = free_port()
    log = folder / "up.log"
    args = ["--port", str(port), "--log-dir", str(folder / "logs"), "--no-ledger"]
    args += ["--interval", "0.2", "--kv-cache-memory", "8MiB"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "inferplane", "up", str(fleet), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        _traffic(url)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_up_serves_the_status_page_with_its_own_replica(up_url: str, tmp_path: Path) -> None:
    status: dict[str, Any] = httpx.get(f"{up_url}/ui/status.json", timeout=5).json()
    assert status["totals"]["ready"] == 1
    assert max(status["series"]["requests_per_s"]) > 0
    dom = _chromium(f"{up_url}/ui/", tmp_path / "profile", "--dump-dom")
    assert 'data-loaded="true"' in dom
    assert 'data-pool="main"' in dom
    assert 'data-pool="main.rollout"' in dom  # up's canary pool for rollouts, empty until one
    assert "2 pools · 1 replicas · 1 ready" in dom
