"""A real Prometheus server (Debian's package) on a free port of 127.0.0.1, for end-to-end tests."""

import contextlib
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from inferplane.control.actuators.local import free_port
from tests.e2e.server_process import wait_until_ok

READY_TIMEOUT_S = 30.0


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


class PrometheusProcess:
    """Prometheus scraping `jobs` (name -> host:port targets) every second, with rule files."""

    def __init__(
        self, folder: Path, jobs: Mapping[str, Sequence[str]], rule_files: Sequence[Path]
    ) -> None:
        binary = prometheus_binary()
        if binary is None:
            raise RuntimeError("prometheus is not installed: scripts/ci/prometheus.sh installs it")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / "prometheus.log"
        config = folder / "prometheus.yml"
        config.write_text(yaml.safe_dump(_config(jobs, rule_files)))
        command = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        wait_until_ok(self.process, f"{self.url}/-/ready", "prometheus", self.log, timeout_s)

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=5.0)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _config(jobs: Mapping[str, Sequence[str]], rule_files: Sequence[Path]) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": list(targets)}]}
            for name, targets in jobs.items()
        ],
    }


@contextlib.contextmanager
def running_prometheus(
    folder: Path, jobs: Mapping[str, Sequence[str]], rule_files: Sequence[Path]
) -> Iterator[PrometheusProcess]:
    server = PrometheusProcess(folder, jobs, rule_files)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
