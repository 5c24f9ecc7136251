"""The things the gateway benchmark measures, and how each is installed and started.

A Target is a proxy (or none, for "direct") between the load generator and the mock upstream.
Peers are installed by this file into their own virtualenvs under bench/gateway/.peers/
(git-ignored), or from Debian packages for nginx and wrk, once, and reused on later runs.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".peers"
REPO = HERE.parent.parent
LITELLM_PIN = "litellm[proxy]==1.106.12"
VLLM_ROUTER_PIN = "vllm-router==0.1.17"
CHAT_PATH = "/v1/chat/completions"


@dataclass
class Target:
    """One thing under test: its name, how to start it, and where it listens."""

    name: str
    label: str
    port: int
    command: Callable[[int, Path], list[str]]  # (upstream port, temp dir) -> argv
    env: dict[str, str] = field(default_factory=dict)
    workers: int | None = None
    version: Callable[[], str] = lambda: ""
    install: Callable[[], None] = lambda: None
    ready_timeout_s: float = 60.0

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{CHAT_PATH}"


def _sh(argv: list[str], log: Path | None = None) -> None:
    print("  $", " ".join(argv), flush=True)
    out = log.open("a") if log else subprocess.DEVNULL
    try:
        subprocess.run(argv, check=True, stdout=out, stderr=subprocess.STDOUT)
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


def apt_install(*packages: str) -> None:
    """Debian packages (nginx, wrk) by the ordinary client; needs root."""
    missing = [p for p in packages if shutil.which(p) is None]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def venv_install(name: str, spec: str, probe: str) -> None:
    """A virtualenv .peers/NAME holding SPEC; reused when its console script PROBE is there."""
    venv = PEERS / name
    if (venv / "bin" / probe).exists():
        return
    PEERS.mkdir(parents=True, exist_ok=True)
    print(f"installing {spec} into {venv} (once)", flush=True)
    _sh([sys.executable, "-m", "venv", str(venv)])
    _sh([str(venv / "bin" / "pip"), "install", "-q", spec], PEERS / f"{name}.log")


def pip_version(venv: str, package: str) -> str:
    python = PEERS / venv / "bin" / "python"
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def tool_version(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


NGINX_CONF = """worker_processes {workers};
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  upstream mock {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""


def nginx_command(port: int, workers: int) -> Callable[[int, Path], list[str]]:
    def argv(upstream: int, tmp: Path) -> list[str]:
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(workers=workers, tmp=tmp, upstream=upstream, port=port))
        return ["nginx", "-c", str(conf), "-p", str(tmp)]

    return argv


def vllm_router_command(port: int) -> Callable[[int, Path], list[str]]:
    def argv(upstream: int, tmp: Path) -> list[str]:
        return [
            str(PEERS / "vllm-router" / "bin" / "vllm-router"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--worker-urls",
            f"http://127.0.0.1:{upstream}",
            "--policy",
            "round_robin",
            "--worker-startup-check-interval",
            "1",
            "--log-level",
            "warning",
        ]

    return argv


LITELLM_CONF = """model_list:
  - model_name: bench-model
    litellm_params:
      model: openai/bench-model
      api_base: http://127.0.0.1:{upstream}/v1
      api_key: none
litellm_settings:
  telemetry: false
  callbacks: []
  success_callback: []
  failure_callback: []
  set_verbose: false
  json_logs: false
general_settings: {{}}
"""

# No network calls at start (model cost map), no telemetry, quiet logs, and no auth: like
# inferplane's dev mode, which the benchmark runs without keys.
LITELLM_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOG": "ERROR",
    "TELEMETRY": "False",
    "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
}


def litellm_command(port: int, workers: int | None) -> Callable[[int, Path], list[str]]:
    def argv(upstream: int, tmp: Path) -> list[str]:
        conf = tmp / "litellm.yaml"
        conf.write_text(LITELLM_CONF.format(upstream=upstream))
        cmd = [
            str(PEERS / "litellm" / "bin" / "litellm"),
            "--config",
            str(conf),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        return cmd + (["--num_workers", str(workers)] if workers else [])

    return argv


GATEWAY_FLEET = """pools:
  bench:
    model: bench-model
    endpoints: ["http://127.0.0.1:{upstream}"]
routes:
  - {{name: default, pool: bench}}
ledger: {{url: "sqlite:///{ledger_dir}/ledger.db"}}
"""


def gateway_command(
    port: int, workers: int, ledger: bool = True
) -> Callable[[int, Path], list[str]]:
    def argv(upstream: int, tmp: Path) -> list[str]:
        fleet = tmp / "fleet.yaml"
        # the ledger is on, as by default, but writes into the run's scratch directory
        fleet.write_text(GATEWAY_FLEET.format(upstream=upstream, ledger_dir=tmp))
        return [
            *gateway_cli(),
            str(fleet),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--ledger" if ledger else "--no-ledger",
        ]

    return argv


def gateway_cli() -> list[str]:
    """`inferplane gateway`, or its module while the command is not registered yet."""
    command = [sys.executable, "-m", "inferplane", "gateway"]
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, check=False)
    if "--replica" in done.stdout:  # the gateway's own help, not the top level's
        return command
    return [sys.executable, "-m", "inferplane.cli.gateway_cmd"]


def inferplane_version() -> str:
    code = "import inferplane; print(inferplane.__version__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"{done.stdout.strip() or 'unknown'} (git {head.stdout.strip() or '?'})"


def no_proxy(upstream: int, tmp: Path) -> list[str]:
    return []


def litellm_target(name: str, port: int, workers: int) -> Target:
    """LiteLLM's proxy; its default is 1 worker, so 1 and one per core are what is measured."""
    return Target(
        name,
        f"LiteLLM ({workers} worker{'s' if workers > 1 else ''})",
        port,
        litellm_command(port, workers),
        env=LITELLM_ENV,
        workers=workers,
        install=lambda: venv_install("litellm", LITELLM_PIN, "litellm"),
        version=lambda: pip_version("litellm", "litellm"),
        ready_timeout_s=180.0,
    )


def all_targets(upstream: int) -> list[Target]:
    """Every target in the order they run: direct first, it is the baseline."""
    cores = os.cpu_count() or 1
    return [
        Target("direct", "direct", upstream, no_proxy, version=lambda: "mock upstream"),
        Target(
            "nginx",
            f"nginx ({cores} workers)",
            9202,
            nginx_command(9202, cores),
            workers=cores,
            install=lambda: apt_install("nginx"),
            version=lambda: tool_version(["nginx", "-v"]),
        ),
        Target(
            "vllm-router",
            "vllm-router",
            9203,
            vllm_router_command(9203),
            install=lambda: venv_install("vllm-router", VLLM_ROUTER_PIN, "vllm-router"),
            version=lambda: pip_version("vllm-router", "vllm-router"),
        ),
        Target(
            "inferplane-1w",
            "inferplane (1 worker)",
            9204,
            gateway_command(9204, 1),
            workers=1,
            version=inferplane_version,
        ),
        Target(
            "inferplane-1w-noledger",
            "inferplane (1 worker, no ledger)",
            9208,
            gateway_command(9208, 1, ledger=False),
            workers=1,
            version=inferplane_version,
        ),
        Target(
            "inferplane-2w",
            "inferplane (2 workers)",
            9205,
            gateway_command(9205, 2),
            workers=2,
            version=inferplane_version,
        ),
        litellm_target("litellm-1w", 9206, 1),
        litellm_target("litellm-2w", 9207, 2),
    ]


def scratch_dir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"gwbench-{name}-"))
