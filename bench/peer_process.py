"""The transformers peer (and the bandwidth probe) in a process of its own.

Why: torch's CPU kernels run on an OpenMP team per calling OS thread. The engine steps on its
own thread; a peer that ran torch on the benchmark's main thread kept a second team spinning
on the same two cores and slowed the engine measured beside it by about a third. In a child
process the peer's team sleeps while the engine is measured, and the reverse.

The child reads one JSON request per line on stdin and answers one JSON line on stdout:
    {"op": "bandwidth"}                                  -> {"bytes_per_s": float}
    {"op": "decode_rate", "prompt": [...], "tokens": n}  -> {"tokens_per_s": float}
    {"op": "static_batches", "prompts": [[...]], "outputs": [...], "batch_size": n}
                                                         -> {"seconds": float}
    {"op": "load_seconds"}                               -> {"seconds": float}

Given a GGUF file name as well, the child loads the model from that file in `directory`
(transformers dequantizes it at every load).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))


class PeerProcess:
    """The parent's handle: start the child with a model directory, ask, close."""

    def __init__(self, directory: Path, dtype: str = "bfloat16", gguf_file: str = "") -> None:
        self._child = subprocess.Popen(
            [sys.executable, __file__, str(directory), dtype, gguf_file],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, op: str, **args: Any) -> dict[str, Any]:
        assert self._child.stdin is not None and self._child.stdout is not None
        self._child.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self._child.stdin.flush()
        line = self._child.stdout.readline()
        if not line:
            raise RuntimeError(f"the peer process died (exit {self._child.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def bandwidth(self) -> float:
        return float(self.ask("bandwidth")["bytes_per_s"])

    def decode_rate(self, prompt: list[int], tokens: int) -> float:
        return float(self.ask("decode_rate", prompt=prompt, tokens=tokens)["tokens_per_s"])

    def static_batches(self, prompts: list[list[int]], outputs: list[int], batch: int) -> float:
        answer = self.ask("static_batches", prompts=prompts, outputs=outputs, batch_size=batch)
        return float(answer["seconds"])

    def close(self) -> None:
        if self._child.stdin is not None:
            self._child.stdin.close()
        self._child.wait(timeout=60)


def _serve(directory: Path, dtype: str, gguf_file: str) -> None:
    import engine_common as common  # noqa: PLC0415
    import torch  # noqa: PLC0415 (only the child needs it)

    started = time.perf_counter()
    model = common.load_hf_model(directory, getattr(torch, dtype), gguf_file or None)
    load_seconds = time.perf_counter() - started
    common.hf_generate(model, [[5, 6, 7]], 2)  # warm up
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "load_seconds":
            print(json.dumps({"seconds": load_seconds}), flush=True)
            continue
        print(json.dumps(_answer(common, model, request)), flush=True)


def _answer(common: Any, model: Any, request: dict[str, Any]) -> dict[str, Any]:
    op = request["op"]
    if op == "bandwidth":
        return {"bytes_per_s": common.memory_read_bandwidth()}
    if op == "decode_rate":
        return {"tokens_per_s": _decode_rate(common, model, request["prompt"], request["tokens"])}
    if op == "static_batches":
        seconds = common.hf_static_batches(
            model, request["prompts"], request["outputs"], request["batch_size"]
        )
        return {"seconds": seconds}
    raise ValueError(f"unknown op {op!r}")


def _decode_rate(common: Any, model: Any, prompt: list[int], tokens: int) -> float:
    """Decode-only rate: the time for `tokens` minus the time for 1 (prefill + first)."""
    start = time.perf_counter()
    common.hf_generate(model, [prompt], 1)
    one = time.perf_counter() - start
    start = time.perf_counter()
    common.hf_generate(model, [prompt], tokens)
    full = time.perf_counter() - start
    return (tokens - 1) / max(full - one, 1e-9)


if __name__ == "__main__":
    _serve(Path(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
