"""`inferplane models ...`: write demo models, resolve model sources."""

import time
from pathlib import Path
from typing import Annotated

import typer

from inferplane.sources import SourceError, resolve_source
from inferplane.sources.demo import PRESETS, parameter_count, write_demo_model

app = typer.Typer(help="Demo models and model sources.", no_args_is_help=True)


@app.command("demo")
def demo(
    directory: Annotated[Path, typer.Argument(help="Where to write the model.")],
    preset: Annotated[str, typer.Option(help="tiny (tests) or small (benchmarks).")] = "tiny",
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
) -> None:
    """Write a Llama-architecture demo model with seeded random weights (HF layout)."""
    if preset not in PRESETS:
        raise typer.BadParameter(f"use one of {', '.join(PRESETS)}", param_hint="--preset")
    started = time.perf_counter()
    write_demo_model(directory, "small" if preset == "small" else "tiny", seed)
    params = parameter_count(PRESETS[preset])
    elapsed = time.perf_counter() - started
    typer.echo(f"wrote {preset} ({params / 1e6:.1f}M parameters) to {directory} in {elapsed:.1f}s")


@app.command("resolve")
def resolve(
    source: Annotated[str, typer.Argument(help="demo:tiny, package:NAME, gguf:PATH or a path.")],
) -> None:
    """Print the local directory for a model source, generating demo models if needed."""
    try:
        typer.echo(str(resolve_source(source)))
    except SourceError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
