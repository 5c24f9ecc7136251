"""Overload and shutdown of a real `inferplane serve` process: 429 when the queue is full,
and SIGTERM under load loses no in-flight request, refuses new ones, then exits 0."""

import contextlib
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.server_process import ServerProcess, running_server

pytestmark = pytest.mark.timeout(180)
IN_FLIGHT = 8
TOKENS = 96


def _serve(
    model: Path, log: Path, seqs: int, waiting: int
) -> "contextlib.AbstractContextManager[ServerProcess]":
    args = [
        str(model),
        "--served-model-name",
        "tiny",
        "--kv-cache-memory",
        "16MiB",
        "--max-num-seqs",
        str(seqs),
        "--max-waiting",
        str(waiting),
        "--drain-timeout",
        "60",
    ]
    return running_server(args, log)


def _stream_all(client: openai.OpenAI, started: threading.Barrier) -> int:
    """Stream one request to its end; returns its completion tokens from the usage chunk."""
    stream = client.completions.create(
        model="tiny",
        prompt="drain",
        max_tokens=TOKENS,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    finish, tokens = None, 0
    for index, chunk in enumerate(stream):
        if index == 0:
            started.wait(timeout=60)
        if chunk.choices and chunk.choices[0].finish_reason is not None:
            finish = chunk.choices[0].finish_reason
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    assert finish == "length"
    return tokens


def _one(client: openai.OpenAI) -> str:
    try:
        client.completions.create(
            model="tiny", prompt="busy", max_tokens=TOKENS, extra_body={"ignore_eos": True}
        )
    except openai.RateLimitError as error:
        assert error.response.headers["retry-after"]
        return "429"
    return "200"


def test_queue_full_is_a_rate_limit_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    with _serve(tiny_model_dir, tmp_path / "log", seqs=1, waiting=1) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            outcomes = list(pool.map(lambda _: _one(client), range(IN_FLIGHT), timeout=120))
    assert "429" in outcomes
    assert "200" in outcomes


def test_sigterm_drains_without_losing_requests(tiny_model_dir: Path, tmp_path: Path) -> None:
    with _serve(tiny_model_dir, tmp_path / "log", seqs=IN_FLIGHT, waiting=64) as server:
        _drain_under_load(server)


def _drain_under_load(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    barrier = threading.Barrier(IN_FLIGHT + 1)
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        futures: list[Future[int]] = [
            pool.submit(_stream_all, client, barrier) for _ in range(IN_FLIGHT)
        ]
        barrier.wait(timeout=60)
        server.terminate()
        _wait_status(f"{server.url}/ready", 503)
        late = httpx.post(f"{server.url}/v1/completions", json={"model": "tiny", "prompt": "x"})
        assert late.status_code == 503
        assert late.json()["error"]["code"] == "draining"
        assert [f.result(timeout=120) for f in futures] == [TOKENS] * IN_FLIGHT
    assert server.wait_exit(timeout_s=30) == 0


def _wait_status(url: str, status: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if httpx.get(url, timeout=2).status_code == status:
            return
        time.sleep(0.02)
    raise AssertionError(f"{url} never answered {status}")
