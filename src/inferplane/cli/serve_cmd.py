"""`inferplane serve MODEL`: one model server with the OpenAI API (like `vllm serve`)."""

import os
import re
from typing import TYPE_CHECKING, Annotated

import typer

from inferplane.sources import SourceError

if TYPE_CHECKING:
    from inferplane.server.state import ServerState

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
ADMIN_KEY_ENV = "INFERPLANE_ADMIN_KEY"


def parse_size(text: str) -> int:
    """'512MiB' -> 536870912; a bare number is bytes."""
    match = _SIZE.match(text)
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a size: write e.g. 512MiB, 2GiB or 1000000")
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "b").lower()])


def _announce(state: "ServerState", url: str) -> None:
    names = ", ".join(state.model_names)
    typer.echo(f"inferplane: serving {names} at {url}/v1 (Ctrl-C or SIGTERM drains, then exits)")


def serve(  # noqa: PLR0917 (a typer command: one parameter per flag)
    model: Annotated[
        str,
        typer.Argument(help="A model directory, demo:tiny, demo:small, package:NAME or gguf:PATH."),
    ],
    served_model_name: Annotated[
        str | None, typer.Option(help="The name clients send as `model` (default: MODEL).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16.")] = "auto",
    max_model_len: Annotated[
        int | None, typer.Option(help="Context length (default: the model's).")
    ] = None,
    kv_cache_memory: Annotated[
        str,
        typer.Option("--kv-cache-memory", "--kv-cache-bytes", help="KV cache size, e.g. 512MiB."),
    ] = "512MiB",
    max_num_seqs: Annotated[int, typer.Option(help="Most requests in one batch.")] = 64,
    max_waiting: Annotated[int, typer.Option(help="Most waiting requests before 429.")] = 1024,
    stream_interval: Annotated[
        int,
        typer.Option(
            help="Tokens per streamed update after the first: 1 sends each token at once, "
            "N cuts the per-token work of a fast model N-fold."
        ),
    ] = 1,
    stream_buffer: Annotated[
        str,
        typer.Option(
            help="Unsent bytes a client connection may hold (kernel and server buffers) "
            "before its response waits for the client, e.g. 256KiB."
        ),
    ] = "256KiB",
    stream_stall_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a waiting response may see its client read nothing before the "
            "connection is cut and its generation aborted (keep it above a fronting "
            "gateway's)."
        ),
    ] = 60.0,
    quantization: Annotated[str, typer.Option(help="none, int8 or q4_0 (4-bit weights).")] = "none",
    task: Annotated[
        str, typer.Option(help="generate, embed or auto (BERT-family -> embed).")
    ] = "auto",
    embedding_model: Annotated[
        str | None, typer.Option(help="Also serve this embedding model, e.g. package:NAME.")
    ] = None,
    embedding_model_name: Annotated[
        str | None, typer.Option(help="The name clients send for the embedding model.")
    ] = None,
    admin_key: Annotated[
        str | None, typer.Option(help=f"Key of the admin API (or ${ADMIN_KEY_ENV}).")
    ] = None,
    model_version: Annotated[
        str, typer.Option(help="Reported in headers and /v1/predict.")
    ] = "unversioned",
    drain_timeout: Annotated[
        float, typer.Option(help="Seconds SIGTERM waits for in-flight requests.")
    ] = 30.0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    log_json: Annotated[
        bool, typer.Option(help="JSON log lines (one object per line) or plain text.")
    ] = True,
    engine_in_process: Annotated[
        bool,
        typer.Option(
            "--engine-in-process",
            help="Step the engine on a thread of the server process, not in its own process.",
        ),
    ] = False,
) -> None:
    """Serve MODEL with an OpenAI-compatible API until SIGTERM or Ctrl-C.

    Set INFERPLANE_OTLP_ENDPOINT (e.g. http://otel-collector:4318) to export trace spans."""
    # Loaded here, not at the top: the server brings torch, which no other command needs.
    from inferplane.http.backpressure import StreamLimits  # noqa: PLC0415
    from inferplane.server.serve import ServeOptions, run  # noqa: PLC0415

    try:
        options = ServeOptions(
            model=model,
            served_model_name=served_model_name,
            host=host,
            port=port,
            dtype=dtype,  # type: ignore[arg-type]  # EngineConfig validates the choice
            max_model_len=max_model_len,
            kv_cache_bytes=parse_size(kv_cache_memory),
            max_num_seqs=max_num_seqs,
            max_waiting=max_waiting,
            stream_interval=stream_interval,
            quantization=quantization,  # type: ignore[arg-type]
            task=task,  # type: ignore[arg-type]
            embedding_model=embedding_model,
            embedding_model_name=embedding_model_name,
            admin_key=admin_key or os.environ.get(ADMIN_KEY_ENV) or None,
            model_version=model_version,
            drain_timeout_s=drain_timeout,
            device=device,
            log_level=log_level,
            log_json=log_json,
            engine_in_process=engine_in_process,
            streams=StreamLimits(parse_size(stream_buffer), stream_stall_timeout),
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    try:
        run(options, _announce)
    except SourceError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error


if __name__ == "__main__":  # `python -m inferplane.cli.serve_cmd MODEL`, before registration
    typer.run(serve)
