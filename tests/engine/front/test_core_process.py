"""The child side of the process link: how it starts, fails to start, and ends."""

import functools
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.engine import LLMEngine
from inferplane.engine.front.process_link import ProcessLink
from tests.engine.echo_runner import PagedEchoRunner

pytestmark = pytest.mark.timeout(60)


def test_an_engine_that_fails_to_build_raises_its_error_in_the_parent() -> None:
    build = functools.partial(
        LLMEngine, EngineConfig(model="test"), PagedEchoRunner(max_model_len=0)
    )
    with pytest.raises(ValueError, match="max_model_len is unknown"):
        ProcessLink.spawn(build)


ORPHAN_SCRIPT = """
import functools
import sys
from inferplane.engine.core.config import EngineConfig
from inferplane.engine.front.build import build_engine
from inferplane.engine.front.process_link import ProcessLink

if __name__ == "__main__":
    config = EngineConfig(model=sys.argv[1], kv_cache_bytes=1 << 21, device="cpu")
    link = ProcessLink.spawn(functools.partial(build_engine, config))
    print(link.pid, flush=True)
    sys.stdin.read()
"""


def test_the_engine_process_exits_when_its_parent_dies(tiny_model_dir: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_SCRIPT, str(tiny_model_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """Running (a zombie counts as gone: its reaper is whoever adopted it, not us)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
