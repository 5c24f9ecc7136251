"""The status page in headless Chromium (Debian's package), served by a real gateway over a
real `inferplane serve demo:tiny` replica after real traffic: the DOM shows the pool and its
replica, the charts have points, and a screenshot is taken (docs/status-page.png is one)."""

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.gateway_process import running_gateway
from tests.e2e.server_process import ServerProcess, running_server

pytestmark = pytest.mark.timeout(180)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_TIMEOUT_S = 60
TRAFFIC_S = 4.0
REPLICA_ARGS = (
    "--served-model-name",
    "chat",
    "--max-model-len",
    "256",
    "--kv-cache-memory",
    "8MiB",
)
SCREENSHOT_DIR_ENV = "INFERPLANE_SCREENSHOT_DIR"  # set it to refresh docs/status-page.png


@pytest.fixture(scope="module")
def replica(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("replica")
    with running_server([str(tiny_model_dir), *REPLICA_ARGS], folder / "replica.log") as server:
        yield server


@pytest.fixture(scope="module")
def gateway_url(replica: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("gateway")
    fleet = folder / "fleet.yaml"
    fleet.write_text(
        "models: {chat: {source: demo:tiny}}\n"
        f"pools: {{main: {{model: chat, endpoints: [{replica.url}]}}}}\n"
        "routes: [{name: default, pool: main}]\n"
    )
    with running_gateway(fleet, [], folder / "gateway.log") as gateway:
        _traffic(gateway.url)
        yield gateway.url


def _traffic(url: str) -> None:
    """A few seconds of chat, half of it streamed (TTFT is measured on streams)."""
    deadline, index = time.monotonic() + TRAFFIC_S, 0
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.monotonic() < deadline:
            body = {
                "model": "chat",
                "messages": [{"role": "user", "content": f"hello {index}"}],
                "max_tokens": 6,
                "stream": index % 2 == 0,
            }
            assert client.post("/v1/chat/completions", json=body).status_code == 200
            index += 1
        time.sleep(1.5)  # one more sample after the last request


def _chromium(url: str, profile: Path, *args: str) -> str:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed: scripts/ci/chromium.sh installs it")
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
        "--virtual-time-budget=4000",
        *args,
        url,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_status_json_has_history(gateway_url: str) -> None:
    status: dict[str, Any] = httpx.get(f"{gateway_url}/ui/status.json", timeout=5).json()
    assert status["totals"]["ready"] == 1
    assert max(status["series"]["requests_per_s"]) > 0
    assert any(v is not None and v > 0 for v in status["series"]["ttft_p50_s"])


def test_the_page_shows_the_pool_and_its_replica(
    gateway_url: str, replica: ServerProcess, tmp_path: Path
) -> None:
    dom = _chromium(f"{gateway_url}/ui/", tmp_path / "profile", "--dump-dom")
    assert 'data-loaded="true"' in dom
    assert 'data-pool="main"' in dom
    assert f'data-replica="main/127.0.0.1:{replica.port}"' in dom
    assert "1 pools · 1 replicas · 1 ready" in dom
    assert "model chat" in dom


def test_a_screenshot(gateway_url: str, tmp_path: Path) -> None:
    shot = tmp_path / "status-page.png"
    _chromium(f"{gateway_url}/ui/", tmp_path / "profile", f"--screenshot={shot}")
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000
    target = os.environ.get(SCREENSHOT_DIR_ENV)
    if target:
        shutil.copy(shot, Path(target) / "status-page.png")
