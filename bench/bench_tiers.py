"""Warm-to-hot against cold-to-hot for demo:small: what a model tier buys a waiting request.

cold -> hot: start `inferplane serve demo:small` and time until /ready answers 200, then the
first streamed token of one request (the time a request waits when no process was up).
warm -> hot: on the same server, /admin/sleep (the engine frees weights and KV cache, the
process stays), then time /admin/wake until it returns, then the first token again.
Each is repeated (3 times by default, a fresh process per cold start). Writes
bench/results/tiers.json and tiers.png, with the machine it ran on.
"""

import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from machine import machine_record

RESULTS = Path(__file__).parent / "results"
READY_TIMEOUT_S = 600.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def first_token_s(client: httpx.Client) -> float:
    """Seconds from sending a streamed chat request to its first content chunk."""
    body = {"model": "bench", "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 4, "stream": True}  # fmt: skip
    started = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: ") and '"content"' in line:
                return time.perf_counter() - started
    raise RuntimeError("the stream ended without a token")


def wait_ready(client: httpx.Client, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            if client.get("/ready").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise SystemExit("the server was not ready in time")


def one_round(model: str, dtype: str) -> dict[str, float]:
    port, key = free_port(), secrets.token_urlsafe(16)
    command = [sys.executable, "-m", "inferplane.cli.serve_cmd", model, "--port", str(port),
               "--dtype", dtype, "--served-model-name", "bench",
               "--kv-cache-memory", "128MiB"]  # fmt: skip
    env = {**os.environ, "INFERPLANE_ADMIN_KEY": key}
    started = time.perf_counter()
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    admin = {"authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120.0) as client:
            wait_ready(client, server)
            cold_ready = time.perf_counter() - started
            cold = cold_ready + first_token_s(client)
            client.post("/admin/sleep", headers=admin).raise_for_status()
            woke = time.perf_counter()
            client.post("/admin/wake", headers=admin).raise_for_status()
            wait_ready(client, server)
            warm_ready = time.perf_counter() - woke
            warm = warm_ready + first_token_s(client)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    return {"cold_ready_s": cold_ready, "cold_first_token_s": cold,
            "warm_ready_s": warm_ready, "warm_first_token_s": warm}  # fmt: skip


def machine() -> dict[str, Any]:
    import torch  # noqa: PLC0415 (only for the record)

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return machine_record(torch=torch.__version__, cuda=gpu)


def plot(rounds: list[dict[str, float]], path: Path) -> None:
    keys = ["cold_first_token_s", "warm_first_token_s"]
    medians = [statistics.median(r[k] for r in rounds) for k in keys]
    figure, axis = plt.subplots(figsize=(5, 3.5))
    axis.bar(["cold -> hot", "warm -> hot"], medians, color=["#999999", "#e08030"])
    for index, key in enumerate(keys):
        axis.scatter([index] * len(rounds), [r[key] for r in rounds], color="black", zorder=3)
    axis.set_ylabel("seconds to first token (median, dots: runs)")
    axis.set_title("demo:small: promotion to hot")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="demo:small")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="tiers")
    args = parser.parse_args()
    rounds = [one_round(args.model, args.dtype) for _ in range(args.repeats)]
    summary = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    result = {"model": args.model, "dtype": args.dtype, "repeats": args.repeats,
              "median": summary, "rounds": rounds, "machine": machine()}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rounds, RESULTS / f"{args.out}.png")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
