"""How much memory this process may still take: the kernel's MemAvailable, or less where the
process's control group sets a limit (a container's memory: limit), for choices that trade
memory for speed, such as a second, packed copy of the weights.

The group's files are read at the hierarchy's root, which inside a container's cgroup
namespace is the container's own group: cgroup v2's memory.max and memory.current, or v1's
memory.limit_in_bytes and memory.usage_in_bytes. None where nothing can be read (not Linux).
"""

from pathlib import Path

PROC_MEMINFO = Path("/proc/meminfo")
CGROUP_ROOT = Path("/sys/fs/cgroup")
_CGROUP_FILES = (  # (limit, usage): v2, then v1
    ("memory.max", "memory.current"),
    ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
)


def available_bytes(meminfo: Path = PROC_MEMINFO, cgroup: Path = CGROUP_ROOT) -> int | None:
    """The least of what the host has available and what the group still allows."""
    found = [value for value in (_mem_available(meminfo), _group_room(cgroup)) if value is not None]
    return min(found) if found else None


def _mem_available(meminfo: Path) -> int | None:
    try:
        lines = meminfo.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024  # kB
    return None


def _group_room(root: Path) -> int | None:
    for limit_file, usage_file in _CGROUP_FILES:
        limit, usage = _read_int(root / limit_file), _read_int(root / usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:  # v1's "none" is huge
            return max(0, limit - usage)
    return None


def _read_int(path: Path) -> int | None:
    """A file holding one integer; None when absent, unreadable or `max` (no limit)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
