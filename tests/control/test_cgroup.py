from pathlib import Path

from inferplane.control.cgroup import cpu_quota, parse_cpu_max, v1_quota


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_cpu_max_of_the_process_group(tmp_path: Path) -> None:
    _write(tmp_path / "proc", "0::/kubepods/pod1/c1\n")
    _write(tmp_path / "fs/kubepods/pod1/c1/cpu.max", "150000 100000\n")
    _write(tmp_path / "fs/cpu.max", "max 100000\n")
    assert cpu_quota(tmp_path / "fs", tmp_path / "proc") == 1.5
    # Inside a cgroup namespace the group is the root.
    _write(tmp_path / "proc", "0::/\n")
    assert cpu_quota(tmp_path / "fs", tmp_path / "proc") is None


def test_cgroup_v1_quota_and_period(tmp_path: Path) -> None:
    _write(tmp_path / "proc", "4:cpu,cpuacct:/docker/abc\n1:name=systemd:/\n0::/\n")
    _write(tmp_path / "fs/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "200000\n")
    _write(tmp_path / "fs/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n")
    assert cpu_quota(tmp_path / "fs", tmp_path / "proc") == 2.0
    _write(tmp_path / "fs/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n")
    assert cpu_quota(tmp_path / "fs", tmp_path / "proc") is None


def test_no_cgroup_files_means_no_quota(tmp_path: Path) -> None:
    assert cpu_quota(tmp_path / "fs", tmp_path / "missing") is None


def test_the_kernels_formats() -> None:
    assert parse_cpu_max("max 100000") is None
    assert parse_cpu_max("50000 100000") == 0.5
    assert parse_cpu_max("garbage") is None
    assert v1_quota("-1", "100000") is None
    assert v1_quota("300000", "100000") == 3.0
    assert v1_quota("0", "100000") is None
