"""`inferplane place FLEET.yaml`: pack a fleet's replicas onto its GPUs and cores and print
the layout.

The GPUs are the fleet file's declared `inventory`, or with --nvml this machine's GPUs. Each
replica's need comes from the planner's VRAM formula. CPU replicas are placed on the host's
cores (declared under `cpu:`, else this machine's) as `inferplane up` pins them: their cores
and thread count, and whether they share cores. Prints a table of replicas (device,
CUDA_VISIBLE_DEVICES, MIG profile, memory, cores), one of GPUs, one of cores per NUMA node,
the utilisation and the nvidia mig-parted config for the layout; --json prints the same as
one document. Exit status: 0 when every replica is placed, 1 when some are not (each with
why) or the CPU replicas need more cores than the host has, 2 for bad input.
"""

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from inferplane.config.errors import ConfigError
from inferplane.config.loader import load_fleet
from inferplane.config.schema import FleetConfig
from inferplane.control.cores import CorePlan, check_cores, cpu_pools, plan_cores
from inferplane.control.demand import Count, ReplicaDemand, fleet_demands
from inferplane.control.inventory import (
    declared_inventory,
    fleet_cpus,
    format_cpu_list,
    nvml_inventory,
)
from inferplane.control.placement import Assignment, CoreUse, Placement, place
from inferplane.planner.vram import GIB

app = typer.Typer(help="Place a fleet's replicas on GPUs and MIG slices.")


def run_placement(fleet_path: Path, batch: int, count: Count, nvml: bool) -> Placement:
    fleet = load_fleet(fleet_path)
    devices = nvml_inventory() if nvml else declared_inventory(fleet.inventory)
    if not devices and any(d.uses_gpu for d in fleet_demands(fleet, batch, count)):
        where = "NVML sees no GPU here" if nvml else "the fleet file declares no inventory"
        raise ValueError(f"{where}: add `inventory: [{{gpu: H100, count: 2}}]` to plan onto GPUs")
    cores = plan_cores(fleet, fleet_cpus(fleet.cpu)) if cpu_pools(fleet) else None
    result = place(start_order(fleet, fleet_demands(fleet, batch, count)), devices, cores)
    if cores is not None:
        problems = [str(issue) for issue in check_cores(fleet, cores).problems]
        result = replace(result, problems=tuple(problems))
    return result


def start_order(fleet: FleetConfig, demands: list[ReplicaDemand]) -> list[ReplicaDemand]:
    """CPU replicas in the order `inferplane up` starts them: every pool's minimum first, then
    the replicas beyond, each pool's next one in turn (as pools scale up side by side). GPU
    replicas keep their places."""
    index: dict[str, int] = {}
    ranked = []
    for position, demand in enumerate(demands):
        if demand.uses_gpu:
            continue
        nth = index[demand.pool] = index.get(demand.pool, -1) + 1
        beyond = nth >= fleet.pools[demand.pool].replicas.min
        ranked.append(((beyond, nth if beyond else position, position), demand))
    cpu = iter(demand for _, demand in sorted(ranked, key=lambda item: item[0]))
    return [demand if demand.uses_gpu else next(cpu) for demand in demands]


@app.command()
def place_command(
    fleet: Annotated[Path, typer.Argument(help="The fleet file.")],
    batch: Annotated[int, typer.Option(help="Sequences of max_model_len per replica.")] = 4,
    replicas: Annotated[str, typer.Option(help="Place each pool's min or max.")] = "max",
    nvml: Annotated[bool, typer.Option(help="Use this machine's GPUs (NVML).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON.")] = False,
) -> None:
    """Pack replicas onto whole GPUs and MIG slices (best fit decreasing)."""
    try:
        if replicas not in {"min", "max"}:
            raise ValueError(f"--replicas must be min or max (got {replicas!r})")
        result = run_placement(fleet, batch, "min" if replicas == "min" else "max", nvml)
    except (ConfigError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    if as_json:
        typer.echo(json.dumps(placement_to_dict(result), indent=2))
    else:
        _print(result)
    if result.unplaced or result.problems:
        raise typer.Exit(1)


def placement_to_dict(result: Placement) -> dict[str, Any]:
    return {
        "replicas": [
            {"replica": a.replica, "pool": a.pool, "need_bytes": a.need_bytes,
             "devices": list(a.devices), "mig_profile": a.mig_profile,
             "cuda_visible_devices": a.visible_devices, "memory_fraction": a.memory_fraction,
             "cpus": list(a.cpus), "threads": a.threads, "shared_cpus": a.shared_cpus}
            for a in result.assignments
        ],
        "unplaced": [
            {"replica": u.replica, "pool": u.pool, "need_bytes": u.need_bytes, "reason": u.reason}
            for u in result.unplaced
        ],
        "gpus": [
            {"index": g.device.index, "name": g.device.name, "memory_bytes": g.device.memory_bytes,
             "used_bytes": g.used_bytes, "replicas": list(g.replicas), "mig": g.mig_devices}
            for g in result.gpus
        ],
        "utilisation": round(result.utilisation, 4),
        "mig_parted": result.mig_parted_config(),
        "cores": None if result.cores is None else _cores_to_dict(result.cores),
        "problems": list(result.problems),
    }  # fmt: skip


def _cores_to_dict(use: CoreUse) -> dict[str, Any]:
    plan: CorePlan = use.plan
    return {
        "host": plan.host.source, "cores": len(plan.host.cpus),
        "numa_nodes": [list(node) for node in plan.host.nodes],
        "reserved": list(plan.reserved), "share": plan.share, "per_replica": dict(plan.sizes),
        "replicas_on": {str(cpu): list(names) for cpu, names in use.replicas.items()},
    }  # fmt: skip


def _print(result: Placement) -> None:
    console = Console(width=140)
    console.print(_replica_table(result))
    if result.gpus or result.cores is None:
        console.print(_gpu_table(result))
        used, total = result.used_bytes / GIB, result.total_bytes / GIB
        console.print(f"utilisation: {result.utilisation:.1%} ({used:.1f} of {total:.1f} GiB)")
    if result.cores is not None:
        console.print(_core_table(result.cores))
        console.print(f"cores: {result.cores.plan.describe()}", highlight=False)
    for missing in result.unplaced:
        console.print(f"[bold red]not placed:[/] {missing.replica}: {missing.reason}")
    for problem in result.problems:
        console.print(f"[bold red]refused:[/] {problem}", highlight=False)
    if any(use.mig_devices is not None for use in result.gpus):
        console.print("nvidia mig-parted config (mig-parted apply -f FILE -c inferplane):")
        text = yaml.safe_dump(result.mig_parted_config(), sort_keys=False)
        console.print(text.rstrip(), highlight=False, markup=False)


def _replica_table(result: Placement) -> Table:
    table = Table(title="replicas", title_justify="left")
    columns = ("replica", "pool", "need GiB", "CUDA_VISIBLE_DEVICES", "MIG", "mem share", "cores")
    for column in columns:
        table.add_column(column, justify="right" if column in {"need GiB", "mem share"} else "left")
    for a in result.assignments:
        device = a.visible_devices or "cpu"
        share = f"{a.memory_fraction:.0%}" if a.devices else "-"
        table.add_row(a.replica, a.pool, f"{a.need_bytes / GIB:.1f}", device,
                      a.mig_profile or "-", share, _cores(a))  # fmt: skip
    for u in result.unplaced:
        table.add_row(
            u.replica, u.pool, f"{u.need_bytes / GIB:.1f}", "[red]not placed[/]", "-", "-", "-"
        )
    return table


def _cores(a: Assignment) -> str:
    if not a.cpus:
        return "-"
    shared = ", shared" if a.shared_cpus else ""
    threads = f"{a.threads} thread{'s' if a.threads != 1 else ''}"
    return f"{format_cpu_list(a.cpus)} ({threads}{shared})"


def _core_table(use: CoreUse) -> Table:
    table = Table(title="cores", title_justify="left")
    for column in ("NUMA node", "cpus", "free", "replicas"):
        table.add_column(column, justify="right" if column == "free" else "left")
    for index, node in enumerate(use.plan.host.nodes):
        usable = [cpu for cpu in node if cpu in use.replicas]
        free = sum(1 for cpu in usable if not use.replicas[cpu])
        names = dict.fromkeys(name for cpu in usable for name in use.replicas[cpu])
        table.add_row(str(index), format_cpu_list(node), str(free), ", ".join(names) or "-")
    return table


def _gpu_table(result: Placement) -> Table:
    table = Table(title="GPUs", title_justify="left")
    for column in ("GPU", "name", "GiB", "used GiB", "layout", "replicas"):
        table.add_column(column, justify="right" if "GiB" in column else "left")
    for use in result.gpus:
        memory, used = use.device.memory_bytes / GIB, use.used_bytes / GIB
        table.add_row(str(use.device.index), use.device.name, f"{memory:.1f}", f"{used:.1f}",
                      _layout(use.mig_devices), ", ".join(use.replicas) or "-")  # fmt: skip
    return table


def _layout(mig: dict[str, int] | None) -> str:
    if mig is None:
        return "whole"
    return " + ".join(f"{count} x {name}" for name, count in mig.items()) or "MIG (empty)"
