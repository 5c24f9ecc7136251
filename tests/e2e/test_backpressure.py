"""Backpressure end to end, on real `inferplane serve demo:tiny` replicas, one of them behind a
real gateway: a streaming client that stops reading (a raw socket with a small receive
buffer that sends its request and never reads) is cut off once its connection's send buffer
is full and it has read nothing for the stall timeout, and the replica's engine aborts its
request (no request running, every KV block free again) long before its max_tokens; a client
that hangs up mid-stream through the gateway has its request aborted in the engine at once."""

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.gateway_process import GatewayProcess, running_gateway
from tests.e2e.server_process import ServerProcess, running_server

pytestmark = pytest.mark.timeout(120)
STALL_S = 1.0
# Small buffers so a stalled reader fills them within a few tokens, on both hops.
LIMITS = ("--stream-buffer", "4KiB", "--stream-stall-timeout", str(STALL_S))
MAX_TOKENS = 1900
RUNNING = "vllm:num_requests_running"
KV_USAGE = "vllm:gpu_cache_usage_perc"
GENERATED = "vllm:generation_tokens_total"


@pytest.fixture(scope="module")
def replica(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("backpressure") / "replica.log"
    args = [str(tiny_model_dir), "--served-model-name", "chat", "--max-model-len", "2048"]
    with running_server([*args, *LIMITS], log) as process:
        yield process


@pytest.fixture(scope="module")
def fronted(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A replica behind the gateway, with the replica's default stall timeout (the gateway's
    is what cuts its clients off)."""
    log = tmp_path_factory.mktemp("backpressure-fronted") / "replica.log"
    args = [str(tiny_model_dir), "--served-model-name", "chat", "--max-model-len", "2048"]
    with running_server([*args, "--stream-buffer", "4KiB"], log) as process:
        yield process


@pytest.fixture(scope="module")
def gateway(
    fronted: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    folder = tmp_path_factory.mktemp("backpressure-gw")
    fleet = folder / "fleet.yaml"
    fleet.write_text(
        "models: {chat: {source: demo:tiny}}\n"
        f"pools: {{main: {{model: chat, endpoints: [{fronted.url}]}}}}\n"
        "routes: [{name: default, pool: main}]\n"
    )
    args = ["--health-interval", "0.5", "--log-level", "info", *LIMITS]
    with running_gateway(fleet, args, folder / "gw.log") as process:
        yield process


def _metric(server: ServerProcess, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    match = re.search(rf"^{re.escape(name)}\{{[^}}]*\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else float("nan")


def _cuts(log: Path) -> int:
    return log.read_text(errors="replace").count("cutting off a client that read nothing")


def _wait_for(server: ServerProcess, name: str, value: float, timeout_s: float) -> float:
    """Seconds until the metric reads `value` (fails after `timeout_s`)."""
    started = time.monotonic()
    while _metric(server, name) != value:
        assert time.monotonic() - started < timeout_s, f"{name} still not {value}"
        time.sleep(0.05)
    return time.monotonic() - started


def _request(port: int, receive_buffer: int | None = None) -> socket.socket:
    """A streaming chat sent on a raw socket; nothing of the answer is read yet."""
    body = json.dumps(
        {  # logprobs make each token's event about 2.5 kB: the buffers fill within tokens
            "model": "chat",
            "messages": [{"role": "user", "content": "tell me a story"}],
            "max_tokens": MAX_TOKENS,
            "ignore_eos": True,
            "stream": True,
            "logprobs": True,
            "top_logprobs": 20,
        }
    ).encode()
    sock = socket.socket()
    if receive_buffer is not None:  # before connecting: the advertised window stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", port))
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
    )
    sock.sendall(head + body)
    return sock


def _read_rest(sock: socket.socket) -> bytes:
    """What reaches a client that reads again after the cut: the buffered bytes, then the end."""
    sock.settimeout(5)
    data = b""
    try:
        while chunk := sock.recv(1 << 16):
            data += chunk
    except ConnectionResetError:
        pass
    sock.close()
    return data


def _stalled_reader_is_cut_off(replica: ServerProcess, port: int) -> None:
    generated = _metric(replica, GENERATED)
    sock = _request(port, receive_buffer=4096)
    _wait_for(replica, RUNNING, 1, timeout_s=15)
    _wait_for(replica, RUNNING, 0, timeout_s=10 + STALL_S)
    _wait_for(replica, KV_USAGE, 0, timeout_s=1)  # every block free again
    data = _read_rest(sock)
    assert data.startswith(b"HTTP/1.1 200")
    assert b"data: [DONE]" not in data  # cut off, not finished
    assert _metric(replica, GENERATED) - generated < MAX_TOKENS


def test_a_stalled_reader_is_cut_off_by_the_replica(replica: ServerProcess) -> None:
    _stalled_reader_is_cut_off(replica, replica.port)
    assert _cuts(replica.log_path) >= 1


def test_a_stalled_reader_is_cut_off_by_the_gateway(
    fronted: ServerProcess, gateway: GatewayProcess
) -> None:
    _stalled_reader_is_cut_off(fronted, gateway.port)
    assert _cuts(gateway.log_path) == 1 and _cuts(fronted.log_path) == 0


def test_a_reader_that_keeps_reading_slowly_is_not_cut_off(replica: ServerProcess) -> None:
    cuts = _cuts(replica.log_path)
    sock = _request(replica.port, receive_buffer=4096)
    sock.settimeout(10)
    _wait_for(replica, RUNNING, 1, timeout_s=15)
    data = b""
    for _ in range(int(4 * STALL_S / 0.25)):  # a little every quarter of the stall timeout
        time.sleep(0.25)
        data += sock.recv(2048)
    more = sock.recv(2048)
    sock.close()
    assert data.startswith(b"HTTP/1.1 200")
    assert more  # still served after four stall timeouts of slow reading
    assert _cuts(replica.log_path) == cuts


def test_a_reader_that_keeps_reading_slowly_through_the_gateway_is_not_cut_off(
    fronted: ServerProcess, gateway: GatewayProcess
) -> None:
    # The gateway's stall timeout passes several times while the client reads at 32 kB/s,
    # less than the replica sends (about 2.5 kB a token).
    cuts = _cuts(fronted.log_path), _cuts(gateway.log_path)
    sock = _request(gateway.port, receive_buffer=4096)
    sock.settimeout(10)
    _wait_for(fronted, RUNNING, 1, timeout_s=15)
    data = b""
    deadline = time.monotonic() + 10 * STALL_S
    while time.monotonic() < deadline:
        time.sleep(0.25)
        data += sock.recv(8192)
    more = sock.recv(8192)
    sock.close()
    assert data.startswith(b"HTTP/1.1 200")
    assert more
    assert (_cuts(fronted.log_path), _cuts(gateway.log_path)) == cuts


def test_a_disconnect_through_the_gateway_aborts_in_the_engine(
    fronted: ServerProcess, gateway: GatewayProcess
) -> None:
    replica = fronted
    generated = _metric(replica, GENERATED)
    sock = _request(gateway.port)
    sock.settimeout(30)
    received = 0
    while received < 10_000:  # a few tokens in
        received += len(sock.recv(1 << 16))
    assert _metric(replica, RUNNING) == 1
    sock.close()
    assert _wait_for(replica, RUNNING, 0, timeout_s=5) < 2.0
    _wait_for(replica, KV_USAGE, 0, timeout_s=1)
    assert _metric(replica, GENERATED) - generated < MAX_TOKENS
