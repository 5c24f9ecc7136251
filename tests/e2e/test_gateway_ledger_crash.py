"""The gateway's books survive a crash: a real `inferplane gateway` (with its ledger writer
process) in front of a fake replica. The writer is held stopped while requests are served,
then the gateway and the writer are both SIGKILLed with every record still only in the spool;
the next start stores them before it serves, and stores nothing twice."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from inferplane.control.actuators.local import free_port
from inferplane.gateway.books.accounting import SWEEP_S
from inferplane.ledger.store import UsageStore
from tests.e2e.gateway_process import GatewayProcess, running_gateway
from tests.e2e.server_process import wait_until_ok

pytestmark = pytest.mark.timeout(120)
REPLICA = (
    "import sys; from aiohttp import web; "
    "from tests.gateway.upstreams import Behaviour, fake_replica_app; "
    "web.run_app(fake_replica_app(Behaviour(), 'r'), host='127.0.0.1', port=int(sys.argv[1]), "
    "print=None)"
)
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
REQUESTS = 25


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "replica.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", REPLICA, str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ok(process, f"{url}/ready", "replica", log.read_text, 30)
        yield url
    finally:
        process.kill()
        process.wait(10)


def _fleet(folder: Path, replica: str) -> Path:
    fleet = folder / "fleet.yaml"
    fleet.write_text(
        "models: {chat: {source: demo:tiny}}\n"
        f"pools: {{main: {{model: chat, endpoints: [{replica}]}}}}\n"
        "routes: [{name: default, pool: main}]\n"
        f"ledger: {{url: 'sqlite:///{folder / 'ledger.db'}'}}\n"
    )
    return fleet


def _writer_pid(gateway: GatewayProcess) -> int:
    """The gateway's ledger writer: its child started by multiprocessing's spawn_main."""
    pid = gateway.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        command = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"spawn_main" in command:
            return int(child)
    raise AssertionError(f"no ledger writer among {children}")


def _count(url: str) -> int:
    with UsageStore(url) as store:
        return store.count()


def test_records_of_a_killed_gateway_are_stored_at_the_next_start(
    tmp_path: Path, replica: str
) -> None:
    fleet, url = _fleet(tmp_path, replica), f"sqlite:///{tmp_path / 'ledger.db'}"
    with running_gateway(fleet, ["--ledger"], tmp_path / "gw1.log") as gateway:
        writer = _writer_pid(gateway)
        os.kill(writer, signal.SIGSTOP)  # it stores nothing from now on
        for _ in range(REQUESTS):
            assert httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT).status_code == 200
        time.sleep(SWEEP_S * 3)  # a sweep has spooled them
        os.kill(writer, signal.SIGKILL)
        gateway.process.kill()
        gateway.process.wait(10)
    assert _count(url) == 0
    assert list((tmp_path / "ledger.db.spool").glob("*.spool"))
    with running_gateway(fleet, ["--ledger"], tmp_path / "gw2.log"):
        assert _count(url) == REQUESTS  # stored before the gateway took a request
    with running_gateway(fleet, ["--ledger"], tmp_path / "gw3.log"):
        assert _count(url) == REQUESTS


def test_a_stopped_gateway_has_stored_every_record_and_its_writer_is_gone(
    tmp_path: Path, replica: str
) -> None:
    fleet, url = _fleet(tmp_path, replica), f"sqlite:///{tmp_path / 'ledger.db'}"
    with running_gateway(fleet, ["--ledger"], tmp_path / "gw.log") as gateway:
        writer = _writer_pid(gateway)
        for _ in range(REQUESTS):
            assert httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT).status_code == 200
        gateway.stop()  # SIGTERM, then wait: the last sweep's records are stored by then
    assert _count(url) == REQUESTS
    assert not Path(f"/proc/{writer}").exists() or b"Z" in _state(writer)
    assert not list((tmp_path / "ledger.db.spool").glob("*.spool"))


def _state(pid: int) -> bytes:
    for line in Path(f"/proc/{pid}/status").read_bytes().splitlines():
        if line.startswith(b"State:"):
            return line
    return b""
