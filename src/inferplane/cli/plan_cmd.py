"""`inferplane plan`: VRAM, GPU options and cost for serving a model, as a table, JSON or chart.

This module does the I/O the planner's pure core leaves out: reading config.json files,
bench results and the price catalog, printing, and drawing the chart. Exit status: 0 when
something fits, 1 when nothing does (the message names the smallest option that would),
2 for bad input.
"""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from inferplane.config.durations import parse_duration
from inferplane.planner.efficiency import (
    EfficiencyTable,
    Measurement,
    fit_efficiency,
    measurements_from_json,
)
from inferplane.planner.gpus import GpuSpec, get_gpu, gpu_catalog
from inferplane.planner.performance import Workload
from inferplane.planner.plan import Plan, make_plan
from inferplane.planner.precision import get_precision
from inferplane.planner.prices import provider_prices
from inferplane.planner.recommend import Option, PlanRequest
from inferplane.planner.report import plan_to_dict
from inferplane.planner.shapes import ModelShape, preset_shapes, shape_from_config
from inferplane.planner.vram import GIB, MemoryAssumptions, ServedModel

app = typer.Typer(help="Plan GPUs, replicas and cost for serving a model.")

DEFAULT_BENCH = Path("bench/results")
_DEFAULT_CONTEXT = 4096


def load_shape(model: str) -> ModelShape:
    """A preset name, demo:tiny / demo:small, a config.json file or a model directory."""
    presets = preset_shapes()
    if model.lower() in presets:
        return presets[model.lower()]
    if model.startswith("demo:"):
        return _demo_shape(model)
    path = Path(model).expanduser()
    config = path / "config.json" if path.is_dir() else path
    if not config.is_file():
        raise ValueError(
            f"unknown model {model!r}: give a preset ({', '.join(presets)}), demo:tiny, "
            "demo:small, a config.json file or a model directory"
        )
    data = json.loads(config.read_text(encoding="utf-8"))
    name = path.name if path.is_dir() else path.parent.name or path.stem
    return shape_from_config(name, data)


def _demo_shape(model: str) -> ModelShape:
    from inferplane.sources.demo import PRESETS, hf_config  # noqa: PLC0415  (imports torch)

    preset = model.removeprefix("demo:")
    if preset not in PRESETS:
        raise ValueError(f"unknown demo model {model!r}: use demo:{' or demo:'.join(PRESETS)}")
    return shape_from_config(model, hf_config(PRESETS[preset]))


def load_efficiency(directory: Path | None) -> EfficiencyTable:
    """Efficiency factors fitted from bench/results/*.json roofline records, where present."""
    found: list[Measurement] = []
    for path in sorted(directory.glob("*.json")) if directory and directory.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not a bench result this planner can read
        found.extend(measurements_from_json(data, path.name))
    return fit_efficiency(found)


def _workload(
    per_day: float | None, per_s: float | None, tokens: tuple[int, int], p95: str | None
) -> Workload:
    if per_day is not None and per_s is not None:
        raise ValueError("give --requests-per-day or --requests-per-s, not both")
    rate = per_s if per_s is not None else (per_day or 0.0) / 86400
    target = parse_duration(p95) if p95 is not None else None
    return Workload(rate, tokens[0], tokens[1], target)


def _gpus(names: list[str] | None) -> tuple[GpuSpec, ...]:
    if not names:
        return tuple(gpu_catalog().values())
    return tuple(get_gpu(name) for name in names)


def _efficiency_lines(plan: Plan) -> list[str]:
    table = plan.request.efficiency
    default = table.default
    lines = [
        f"efficiency (assumed unless measured): decode reaches {default.bandwidth.value:.0%} of "
        f"peak memory bandwidth, prefill {default.compute.value:.0%} of peak tensor throughput"
    ]
    for gpu in table.measured_gpus():
        eff = table.for_gpu(gpu)
        lines.append(
            f"efficiency on {gpu}: bandwidth {eff.bandwidth.value:.0%} ({eff.bandwidth.source}), "
            f"compute {eff.compute.value:.0%} ({eff.compute.source})"
        )
    return lines


@app.callback(invoke_without_command=True)
def plan(  # noqa: PLR0917
    model: Annotated[str, typer.Option(help="Preset, demo:tiny|small, config.json or dir.")],
    dtype: Annotated[str, typer.Option(help="fp32, bf16, fp16, fp8, int8 or int4.")] = "bf16",
    context: Annotated[int | None, typer.Option(help="Tokens per sequence.")] = None,
    batch: Annotated[int, typer.Option(help="Sequences for the VRAM breakdown.")] = 1,
    requests_per_day: Annotated[float | None, typer.Option(help="Mean arrivals per day.")] = None,
    requests_per_s: Annotated[float | None, typer.Option(help="Mean arrivals per second.")] = None,
    input_tokens: Annotated[int, typer.Option(help="Mean prompt tokens.")] = 512,
    output_tokens: Annotated[int, typer.Option(help="Mean generated tokens.")] = 256,
    p95_latency: Annotated[str | None, typer.Option(help="p95 end-to-end target: 3s.")] = None,
    provider: Annotated[str, typer.Option(help="Price list: aws, gcp, runpod, ...")] = "runpod",
    capacity: Annotated[str, typer.Option(help="on-demand, spot or reserved.")] = "on-demand",
    gpu: Annotated[list[str] | None, typer.Option(help="Only these GPUs (repeat).")] = None,
    max_gpus: Annotated[int, typer.Option(help="Most GPUs per replica.")] = 8,
    bench_results: Annotated[Path, typer.Option(help="Measured efficiency.")] = DEFAULT_BENCH,
    top: Annotated[int, typer.Option(help="Options to show in the table.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON.")] = False,
    chart: Annotated[Path | None, typer.Option(help="Write cost vs latency PNG.")] = None,
) -> None:
    """Plan VRAM, GPUs, replicas and cost for serving a model."""
    try:
        shape = load_shape(model)
        served = ServedModel(
            shape,
            get_precision(dtype),
            context or min(_DEFAULT_CONTEXT, shape.max_context),
            MemoryAssumptions(),
        )
        workload = _workload(
            requests_per_day, requests_per_s, (input_tokens, output_tokens), p95_latency
        )
        prices = provider_prices(provider)
        request = PlanRequest(
            served,
            workload,
            _gpus(gpu),
            prices,
            capacity=capacity,
            max_gpus_per_replica=max_gpus,
            efficiency=load_efficiency(bench_results),
        )
        result = make_plan(request, batch, (prices.describe(),))
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    result = _with_efficiency_lines(result)
    if chart is not None:
        write_chart(result, chart)
    _emit(result, as_json, top)
    if not result.fits:
        raise typer.Exit(1)


def _with_efficiency_lines(result: Plan) -> Plan:
    lines = (*result.assumptions, *_efficiency_lines(result))
    return Plan(result.request, result.batch, result.breakdown, result.options,
                result.suggestion, lines)  # fmt: skip


def _emit(result: Plan, as_json: bool, top: int) -> None:
    if as_json:
        typer.echo(json.dumps(plan_to_dict(result), indent=2))
        return
    console = Console(width=160)
    console.print(result.request.model.shape.describe())
    console.print(_memory_table(result))
    problem = result.problem()
    if problem is not None:
        console.print(f"[bold red]does not fit:[/] {problem}")
    else:
        console.print(_options_table(result, top))
    console.print("assumptions:")
    for line in result.assumptions:
        console.print(f"  - {line}", highlight=False)


def _memory_table(result: Plan) -> Table:
    title = f"VRAM of one replica on one GPU, batch {result.batch}"
    table = Table(title=title, title_justify="left")
    table.add_column("part")
    table.add_column("GiB", justify="right")
    table.add_column("bytes", justify="right")
    breakdown = result.breakdown
    rows = [
        ("weights", breakdown.weights_bytes),
        (f"KV cache ({result.request.model.context} tokens)", breakdown.kv_cache_bytes),
        ("activations", breakdown.activation_bytes),
        ("framework overhead", breakdown.overhead_bytes),
        ("total", breakdown.total_bytes),
    ]
    for name, size in rows:
        table.add_row(name, f"{size / GIB:.2f}", f"{size:,}")
    return table


_OPTION_COLUMNS = (
    "#", "GPU", "GPUs", "replicas", "batch", "max", "TTFT ms", "TPOT ms", "p95 s", "tok/s",
    "$/hour", "$/month", "$/1M", "spot $/1M", "rsvd $/1M", "eff.",
)  # fmt: skip
_LEGEND = (
    "GPUs: per replica (tensor parallel); batch: concurrent requests per replica; max: "
    "sequences of the full context one replica holds; tok/s: output tokens per replica; "
    "$/1M: per million prompt + output tokens; * misses the p95 target"
)


def _options_table(result: Plan, top: int) -> Table:
    workload = result.request.workload
    target = "" if workload.p95_latency_s is None else f", p95 <= {workload.p95_latency_s:g} s"
    title = (
        f"options for {workload.requests_per_s * 86400:,.0f} requests/day "
        f"({workload.input_tokens} in / {workload.output_tokens} out{target}), "
        f"ranked by {result.request.capacity} $ per 1M tokens"
    )
    table = Table(title=title, title_justify="left")
    for column in _OPTION_COLUMNS:
        left = column in {"GPU", "eff."}
        table.add_column(column, justify="left" if left else "right", no_wrap=True)
    for rank, option in enumerate(result.options[:top], start=1):
        table.add_row(*_option_row(rank, option))
    table.caption = _LEGEND
    return table


def _money(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value:.3g}"  # cents of a cent matter for small models
    return f"{value:,.{digits}f}"


def _option_row(rank: int, option: Option) -> list[str]:
    mark = "" if option.meets_target else "*"
    spot, reserved = option.costs.get("spot"), option.costs.get("reserved")
    return [
        str(rank), option.gpu, str(option.gpus_per_replica), str(option.replicas),
        str(option.concurrency), str(option.max_batch), f"{option.ttft_s * 1e3:.0f}",
        f"{option.tpot_s * 1e3:.1f}", f"{option.p95_latency_s:.2f}{mark}",
        f"{option.output_tokens_per_s:,.0f}", _money(option.price_per_hour),
        _money(None if option.cost is None else option.cost.cost_per_month, 0),
        _money(option.cost_per_million_tokens),
        _money(None if spot is None else spot.cost_per_million_tokens),
        _money(None if reserved is None else reserved.cost_per_million_tokens),
        "meas." if option.measured else "assumed",
    ]  # fmt: skip


def write_chart(result: Plan, path: Path) -> None:
    """Cost per 1M tokens against p95 latency, one labelled point per priced option."""
    import matplotlib  # noqa: PLC0415  (only the chart needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(figsize=(8, 5))
    for option in result.options:
        cost = option.cost_per_million_tokens
        if cost is None or option.p95_latency_s == float("inf"):
            continue
        axes.scatter(
            option.p95_latency_s, cost, color="tab:green" if option.meets_target else "tab:gray"
        )
        label = f"{option.gpu} x{option.gpus_per_replica} ({option.replicas})"
        axes.annotate(label, (option.p95_latency_s, cost), fontsize=7)
    target = result.request.workload.p95_latency_s
    if target is not None:
        axes.axvline(target, linestyle="--", color="tab:red", label="p95 target")
        axes.legend()
    axes.set_xlabel("p95 latency (s)")
    axes.set_ylabel(f"$ per 1M tokens ({result.request.capacity})")
    axes.set_title(f"{result.request.model.shape.name} at {result.request.model.precision.name}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
