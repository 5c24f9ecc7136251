"""available_bytes: MemAvailable, cut to what a control group's memory limit leaves, on files
written as the kernel writes them; and this host's reading is a plausible number."""

from pathlib import Path

from inferplane.engine.compute.host_memory import available_bytes

MEMINFO = "MemTotal:       24000000 kB\nMemFree:  1000 kB\nMemAvailable:   20000000 kB\n"


def _host(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(MEMINFO)
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return meminfo, root


def test_the_hosts_available_memory_without_a_group_limit(tmp_path: Path) -> None:
    meminfo, root = _host(tmp_path, {"memory.max": "max\n", "memory.current": "123\n"})
    assert available_bytes(meminfo, root) == 20_000_000 * 1024


def test_a_v2_limit_leaves_less(tmp_path: Path) -> None:
    meminfo, root = _host(
        tmp_path, {"memory.max": f"{8 << 30}\n", "memory.current": f"{3 << 30}\n"}
    )
    assert available_bytes(meminfo, root) == 5 << 30


def test_a_v1_limit_and_v1s_no_limit(tmp_path: Path) -> None:
    limited = {
        "memory/memory.limit_in_bytes": f"{4 << 30}",
        "memory/memory.usage_in_bytes": f"{1 << 30}",
    }
    meminfo, root = _host(tmp_path / "a", limited)
    assert available_bytes(meminfo, root) == 3 << 30
    unlimited = {
        "memory/memory.limit_in_bytes": str(2**63 - 4096),
        "memory/memory.usage_in_bytes": "1",
    }
    meminfo, root = _host(tmp_path / "b", unlimited)
    assert available_bytes(meminfo, root) == 20_000_000 * 1024


def test_nothing_readable_is_none(tmp_path: Path) -> None:
    assert available_bytes(tmp_path / "no-meminfo", tmp_path / "no-cgroup") is None


def test_this_host() -> None:
    found = available_bytes()
    assert found is None or 0 < found < 1 << 50
