"""The local actuator over real child processes (the stub replica)."""

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from inferplane.control.actuators.base import Backoff, BackoffConfig, ReplicaSpec
from inferplane.control.actuators.local import LocalActuator

STUB = [sys.executable, str(Path(__file__).parents[1] / "stub_replica.py")]
SPEC = ReplicaSpec("chat", "chat", ("demo:tiny",))
pytestmark = pytest.mark.timeout(30)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_ready(url: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=1.0) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{url}/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(url)


async def test_start_gives_each_replica_a_port_a_log_and_a_group(tmp_path: Path) -> None:
    actuator = LocalActuator(tmp_path, STUB)
    first, second = actuator.start(SPEC), actuator.start(SPEC)
    try:
        assert first.url != second.url and first.id != second.id
        await wait_ready(first.url)
        await wait_ready(second.url)
        assert os.getpgid(first.pid) == first.pid  # its own process group
        assert Path(first.log_path).exists()
        assert {h.id for h in actuator.list()} == {first.id, second.id}
    finally:
        await actuator.close()
    assert not alive(first.pid) and not alive(second.pid)
    assert actuator.list() == []


async def test_a_killed_replica_is_reaped_as_a_crash(tmp_path: Path) -> None:
    actuator = LocalActuator(tmp_path, STUB)
    handle = actuator.start(SPEC)
    try:
        os.kill(handle.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        exited = actuator.reap()
        while not exited and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            exited = actuator.reap()
        assert [h.id for h in exited] == [handle.id]
        assert exited[0].returncode == -signal.SIGKILL and not exited[0].expected_exit
    finally:
        await actuator.close()


async def test_stop_drains_with_sigterm_and_marks_the_exit_expected(tmp_path: Path) -> None:
    actuator = LocalActuator(tmp_path, STUB)
    handle = actuator.start(SPEC)
    try:
        await wait_ready(handle.url)
        await actuator.stop(handle.id, drain=True)
        exited = actuator.reap()
        assert exited[0].returncode == 0 and exited[0].expected_exit
    finally:
        await actuator.close()


async def test_a_replica_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    stubborn = [sys.executable, "-c", "import signal, time; "
                "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]  # fmt: skip
    actuator = LocalActuator(tmp_path, stubborn, grace_s=0.3)
    handle = actuator.start(SPEC)
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await actuator.stop(handle.id)
    assert time.monotonic() - started < 5
    assert not alive(handle.pid) or actuator.reap()[0].returncode == -signal.SIGKILL


def test_children_die_with_their_parent(tmp_path: Path) -> None:
    """Even a SIGKILLed parent leaves no orphan (the kernel's parent-death signal)."""
    script = (
        "import sys, time; from pathlib import Path;"
        "from inferplane.control.actuators.local import LocalActuator;"
        "from inferplane.control.actuators.base import ReplicaSpec;"
        f"a = LocalActuator(Path({str(tmp_path)!r}), {STUB!r});"
        "h = a.start(ReplicaSpec('p', 'm', ()));"
        "print(h.pid, flush=True); time.sleep(60)"
    )
    import subprocess  # noqa: PLC0415

    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.kill()
    parent.wait(5)
    deadline = time.monotonic() + 5
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(child)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan reaped by init is gone entirely)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_backoff_doubles_up_to_the_cap_and_resets_after_a_long_run() -> None:
    backoff = Backoff(BackoffConfig(base_s=1, max_s=4, reset_after_s=60))
    assert [backoff.next_delay(1.0) for _ in range(4)] == [1, 2, 4, 4]
    assert backoff.next_delay(120.0) == 1
    with pytest.raises(ValueError, match="backoff"):
        BackoffConfig(base_s=0)


ALLOWED = sorted(os.sched_getaffinity(0))
two_cores = pytest.mark.skipif(len(ALLOWED) < 2, reason="needs two cores to pin apart")
# Reports what torch makes of its placement, then waits to be stopped.
TORCH_PROBE = [sys.executable, "-c", "import os, time, torch; "
               "print('torch', torch.get_num_threads(), sorted(os.sched_getaffinity(0)), "
               "flush=True); time.sleep(60)"]  # fmt: skip


def status_field(pid: int, name: str, task: int | None = None) -> str:
    path = f"/proc/{pid}/status" if task is None else f"/proc/{pid}/task/{task}/status"
    with open(path) as status:
        line = next(line for line in status if line.startswith(f"{name}:"))
    return line.split(":", 1)[1].strip()


def environment(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as environ:
        pairs = [item.partition(b"=") for item in environ.read().split(b"\0") if item]
    return {key.decode(): value.decode() for key, _, value in pairs}


@two_cores
async def test_a_replica_starts_pinned_with_its_thread_count(tmp_path: Path) -> None:
    actuator = LocalActuator(tmp_path, TORCH_PROBE)
    core = ALLOWED[-1]
    spec = ReplicaSpec("chat", "chat", (), cpus=(core,), threads=1)
    handle = actuator.start(spec)
    try:
        assert status_field(handle.pid, "Cpus_allowed_list") == str(core)
        env = environment(handle.pid)
        assert env["OMP_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "1"
        deadline = time.monotonic() + 20
        log = Path(handle.log_path)
        while "torch" not in log.read_text() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert f"torch 1 [{core}]" in log.read_text()  # torch's own count, read in the child
        unpinned = actuator.start(SPEC)  # no cores in its spec: left as this process is
        threads = environment(unpinned.pid).get("OMP_NUM_THREADS")
        assert threads == os.environ.get("OMP_NUM_THREADS")
        allowed = status_field(unpinned.pid, "Cpus_allowed_list")
        assert allowed == status_field(os.getpid(), "Cpus_allowed_list")
    finally:
        await actuator.close()


# A server with a second thread and a child process of its own (as the engine process is).
FAMILY = [sys.executable, "-c", "import subprocess, sys, threading, time; "
          "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
          "threading.Thread(target=time.sleep, args=(60,), daemon=True).start(); "
          "print('child', child.pid, flush=True); time.sleep(60)"]  # fmt: skip


@two_cores
async def test_pin_moves_every_thread_of_a_running_replica_and_its_children(
    tmp_path: Path,
) -> None:
    actuator = LocalActuator(tmp_path, FAMILY)
    first, second = ALLOWED[0], ALLOWED[1]
    handle = actuator.start(ReplicaSpec("chat", "chat", (), cpus=(first,), threads=1))
    try:
        log = Path(handle.log_path)
        deadline = time.monotonic() + 10
        while "child" not in log.read_text() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        child = int(log.read_text().split()[1])
        assert status_field(child, "Cpus_allowed_list") == str(first)  # inherited
        actuator.pin(handle.id, [second])
        for pid in (handle.pid, child):
            tasks = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
            assert {status_field(pid, "Cpus_allowed_list", t) for t in tasks} == {str(second)}
        assert len(os.listdir(f"/proc/{handle.pid}/task")) >= 2
        assert actuator.list()[0].spec.cpus == (second,)
    finally:
        await actuator.close()
