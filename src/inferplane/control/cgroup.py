"""The CPU quota of the control group this process runs in, in cores.

A container limited to 2 CPUs on a 64-core node still sees all 64 in its affinity mask
(Kubernetes' default CPU manager and `docker run --cpus` set a CFS quota, not a cpuset), so
placing one replica per visible core would run 64 OpenMP teams on 2 cores' worth of time.
The quota says how many cores' time the group may spend: cgroup v2's `cpu.max`
(`QUOTA PERIOD`, or `max PERIOD` for none) or cgroup v1's `cpu.cfs_quota_us` over
`cpu.cfs_period_us` (a quota of -1 is none). The group's own directory is read first, then the
hierarchy's root (inside a container's cgroup namespace the two are the same).
"""

from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def cpu_quota(root: Path = CGROUP_ROOT, membership: Path = PROC_CGROUP) -> float | None:
    """The quota in cores (`1.5` for 150 ms of every 100 ms), None when unlimited or unknown."""
    groups = _groups(membership)
    v2 = groups.get("")
    if v2 is not None:
        found = _first_readable([root / v2 / "cpu.max", root / "cpu.max"])
        if found is not None:
            return parse_cpu_max(found)
    v1 = groups.get("cpu")
    for folder in _v1_folders(root, v1 or "/"):
        quota = _read(folder / "cpu.cfs_quota_us")
        period = _read(folder / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            return v1_quota(quota, period)
    return None


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2's `cpu.max`: `200000 100000` -> 2.0, `max 100000` -> None."""
    quota, _, period = text.strip().partition(" ")
    if quota == "max":
        return None
    return _ratio(quota, period or "100000")


def v1_quota(quota: str, period: str) -> float | None:
    """cgroup v1's quota and period in microseconds: `-1` is no limit."""
    if quota.strip().startswith("-"):
        return None
    return _ratio(quota, period)


def _ratio(quota: str, period: str) -> float | None:
    try:
        share = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None
    return share if share > 0 else None


def _groups(membership: Path) -> dict[str, str]:
    """/proc/self/cgroup as controller -> path: `0::/x` gives "" (v2), `4:cpu,cpuacct:/y`
    gives "cpu" and "cpuacct"."""
    text = _read(membership)
    groups: dict[str, str] = {}
    for line in (text or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(","):
            groups[controller] = parts[2].lstrip("/")
    return groups


def _v1_folders(root: Path, path: str) -> list[Path]:
    mounts = [root / "cpu", root / "cpu,cpuacct", root / "cpuacct,cpu"]
    relative = path.lstrip("/")
    return [mount / relative for mount in mounts] + mounts


def _first_readable(paths: list[Path]) -> str | None:
    for path in paths:
        text = _read(path)
        if text is not None:
            return text
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
