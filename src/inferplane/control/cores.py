"""How many cores each CPU replica of a fleet gets, and whether they fit the host.

A CPU replica (a managed pool with no GPU) runs pinned to its own cores with as many torch /
OpenMP threads as it has cores: replicas that each took every core with their own OpenMP
team ran five times slower together than one alone.

- The platform keeps `cpu.reserve` cores for the gateway, the controller and the ledger
  writer (unset: 1 on a host of 4 cores or more; on a smaller host a reserved core would
  cost the replicas a third or a half of their compute for processes that mostly wait).
- A pool's `resources.cpu` is its replicas' core count (rounded up to whole cores). Unset,
  the cores left over after the pools that say are divided over the maximum replicas of the
  pools that do not (at least 1 each), so every pool can reach its maximum side by side.
- Oversubscription is a decision: when the pools' minimum replicas (the larger of `min` and
  any scheduled minimum) need more cores than the host has for replicas, or one replica
  alone does, the fleet is refused with the pools and numbers, unless `cpu.share` is set.
  Then replicas share cores and their threads are divided, never multiplied: a replica never
  runs more threads than the host has cores for replicas.
- Beyond the minimum, the autoscaler stops a CPU pool where no free cores are left
  (control/core_book.py gives it that cap).
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from inferplane.config.errors import ConfigIssue
from inferplane.config.schema import CpuConfig, FleetConfig, PoolSpec
from inferplane.control.inventory import CpuHost

RESERVE_FROM_CORES = 4  # hosts of this many cores or more keep one for the platform


@dataclass(frozen=True)
class CorePlan:
    """The host, the cores kept for the platform, and each CPU pool's cores per replica."""

    host: CpuHost
    reserved: tuple[int, ...]
    sizes: Mapping[str, int] = field(default_factory=dict)
    share: bool = False

    @property
    def usable(self) -> tuple[int, ...]:
        """The cores replicas may run on, in placement order."""
        return tuple(cpu for cpu in self.host.cpus if cpu not in self.reserved)

    def size(self, pool: str) -> int | None:
        """Cores per replica of a CPU pool; None for a pool this plan does not pin."""
        return self.sizes.get(pool)

    def describe(self) -> str:
        """In words: `this host: 2 cores, none kept for the platform`."""
        kept = len(self.reserved)
        platform = f"{kept} kept for the platform" if kept else "none kept for the platform"
        return f"{self.host.source}: {self.host.describe()}, {platform}"


def cpu_pools(fleet: FleetConfig) -> dict[str, PoolSpec]:
    """The pools whose replicas run on the host's cores: managed, no GPU."""
    return {
        name: pool
        for name, pool in fleet.pools.items()
        if not pool.is_external and not pool.resources.uses_gpu
    }


def reserve_count(config: CpuConfig, cores: int) -> int:
    if config.reserve is not None:
        return config.reserve
    return 1 if cores >= RESERVE_FROM_CORES else 0


def plan_cores(fleet: FleetConfig, host: CpuHost) -> CorePlan:
    """Each CPU pool's cores per replica on this host; ValueError when the reserve leaves
    no core for replicas."""
    reserve = reserve_count(fleet.cpu, len(host.cpus))
    if reserve >= len(host.cpus):
        raise ValueError(
            f"cpu.reserve ({reserve}) leaves no core for replicas on {host.describe()}: "
            f"keep at most {len(host.cpus) - 1}"
        )
    reserved = host.cpus[:reserve]  # the first cores: the kernel's interrupts favour them too
    usable = len(host.cpus) - reserve
    sizes = replica_sizes(cpu_pools(fleet), usable)
    if fleet.cpu.share:  # threads divided, never multiplied
        sizes = {name: min(size, usable) for name, size in sizes.items()}
    return CorePlan(host, reserved, sizes, fleet.cpu.share)


def replica_sizes(pools: Mapping[str, PoolSpec], usable: int) -> dict[str, int]:
    """Cores per replica: a pool's `cpu`, else an even share of what those leave."""
    asked = {name: math.ceil(p.resources.cpu) for name, p in pools.items() if p.resources.cpu}
    spoken = sum(asked[name] * pools[name].replicas.max for name in asked)
    slots = sum(pool.replicas.max for name, pool in pools.items() if name not in asked)
    each = max(1, (usable - spoken) // slots) if slots else 1
    return {name: asked.get(name, min(each, usable)) for name in pools}


def floor_replicas(pool: PoolSpec) -> int:
    """The fewest replicas the pool keeps: its min, or a larger scheduled minimum."""
    scheduled = [window.min for window in pool.autoscale.schedule]
    return min(max([pool.replicas.min, *scheduled]), pool.replicas.max)


@dataclass(frozen=True)
class CoreCheck:
    """What refuses a fleet (problems, each with its path) and what is worth knowing."""

    problems: tuple[ConfigIssue, ...]
    notes: tuple[str, ...]


def check_cores(fleet: FleetConfig, plan: CorePlan) -> CoreCheck:
    """Refuse CPU replicas that need more cores than the host has, unless the fleet shares."""
    pools = cpu_pools(fleet)
    usable = len(plan.usable)
    where = f"the host has {usable} for replicas ({plan.describe()})"
    problems = [] if plan.share else _too_large(pools, plan, where)
    notes = []
    at_min = _at_minimum(pools, plan, where)
    if at_min and plan.share:
        notes.append(f"{at_min}: they share cores, threads divided (cpu.share)")
    elif at_min:
        advice = "lower their cpu or replicas.min, or set `cpu: {share: true}` to let them " \
                 "share cores (threads divided)"  # fmt: skip
        problems.append(ConfigIssue("cpu", f"{at_min}: {advice}"))
    at_max = sum(pool.replicas.max * (plan.size(name) or 0) for name, pool in pools.items())
    if at_max > usable:
        notes.append(f"at their maximum CPU replicas would need {at_max} cores of {usable}: "
                     "the autoscaler stops a CPU pool when no core is free")  # fmt: skip
    return CoreCheck(tuple(problems), tuple(notes))


def _at_minimum(pools: Mapping[str, PoolSpec], plan: CorePlan, where: str) -> str:
    """What the pools' minimum replicas need beyond the host, in words ("" when they fit)."""
    floors = {name: floor_replicas(pool) for name, pool in pools.items()}
    need = sum(floors[name] * (plan.size(name) or 0) for name in pools)
    if need <= len(plan.usable):
        return ""
    listed = ", ".join(f"{name} {floors[name]} x {plan.size(name)}" for name in pools)
    return f"CPU replicas need {need} cores at their minimum ({listed}), but {where}"


def _too_large(pools: Mapping[str, PoolSpec], plan: CorePlan, where: str) -> list[ConfigIssue]:
    usable = len(plan.usable)
    return [
        ConfigIssue(
            f"pools.{name}.resources.cpu",
            f"one replica asks {plan.size(name)} cores, but {where}: lower cpu, or set "
            "`cpu: {share: true}` to run it on fewer threads",
        )
        for name in pools
        if (plan.size(name) or 0) > usable
    ]
