"""Placement: best-fit-decreasing packing of replicas onto whole GPUs and MIG slices.

Replicas are placed most constrained and largest first: multi-GPU replicas, then replicas
asking for a MIG profile (by slice size), then the rest by memory need. Each goes where it
leaves the least free memory:

- a replica of `count` > 1 GPUs takes that many empty whole GPUs (tensor parallel);
- a replica with an explicit MIG profile takes a free slot of that profile on a MIG GPU;
- any other replica shares a whole GPU whose free memory holds its need, or takes the
  smallest MIG profile that holds it on a MIG GPU (mig.py's placement rules).

The result names, per replica, CUDA_VISIBLE_DEVICES ("2", "0,1", or a MIG placeholder
"MIG-GPU-<index>/<profile>/<n>", the n-th slice of that profile on that GPU, which the
actuator resolves to the slice's UUID once the layout is applied) and the share of that
memory it may use; per GPU, its MIG layout as a mig-parted config; and the utilisation
(memory needed / memory of every GPU). A replica that fits nowhere is reported with why.

CPU replicas, given the host's core plan (control/cores.py), are placed on its cores in the
order given, as the controller's core book places them at run time (control/core_book.py):
their cores, their thread count, and whether they share cores. On a fleet that does not
share, a replica for which no free core is left is reported unplaced: the autoscaler stops
its pool there.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from inferplane.control.core_book import CoreBook
from inferplane.control.cores import CorePlan
from inferplane.control.demand import ReplicaDemand
from inferplane.control.inventory import GpuDevice, gpu_matches
from inferplane.control.mig import MEMORY_SLICES, MigLayout, MigProfile, mig_profiles
from inferplane.control.mig import smallest_profile as smallest_mig
from inferplane.planner.vram import GIB

_NOMINAL_SLICE = 10 * GIB


@dataclass(frozen=True)
class Assignment:
    replica: str
    pool: str
    need_bytes: int
    devices: tuple[int, ...] = ()  # empty: the replica runs on the CPU
    mig_profile: str | None = None
    mig_ordinal: int | None = None  # which slice of that profile on the GPU
    memory_fraction: float = 0.0  # of the GPU or slice, for the engine's memory limit
    cpus: tuple[int, ...] = ()  # a CPU replica's cores (empty: not pinned)
    shared_cpus: bool = False  # some of them also run another replica

    @property
    def threads(self) -> int:
        """A pinned CPU replica's torch / OpenMP threads: one per core (0: not pinned)."""
        return len(self.cpus)

    @property
    def visible_devices(self) -> str:
        if self.mig_profile is not None:
            return f"MIG-GPU-{self.devices[0]}/{self.mig_profile}/{self.mig_ordinal}"
        return ",".join(str(index) for index in self.devices)

    @property
    def env(self) -> dict[str, str]:
        return {"CUDA_VISIBLE_DEVICES": self.visible_devices}


@dataclass(frozen=True)
class Unplaced:
    replica: str
    pool: str
    need_bytes: int
    reason: str


@dataclass(frozen=True)
class GpuUse:
    device: GpuDevice
    used_bytes: int
    replicas: tuple[str, ...]
    mig_devices: dict[str, int] | None  # None: not split


@dataclass(frozen=True)
class CoreUse:
    """The host's cores after placement: the plan, and the replicas on each usable core."""

    plan: CorePlan
    replicas: dict[int, tuple[str, ...]]


@dataclass(frozen=True)
class Placement:
    assignments: tuple[Assignment, ...]
    unplaced: tuple[Unplaced, ...]
    gpus: tuple[GpuUse, ...]
    cores: CoreUse | None = None
    problems: tuple[str, ...] = ()  # what refuses the fleet as a whole (cores it lacks)

    @property
    def total_bytes(self) -> int:
        return sum(use.device.memory_bytes for use in self.gpus)

    @property
    def used_bytes(self) -> int:
        return sum(use.used_bytes for use in self.gpus)

    @property
    def utilisation(self) -> float:
        return self.used_bytes / self.total_bytes if self.total_bytes else 0.0

    def mig_parted_config(self, name: str = "inferplane") -> dict[str, Any]:
        """An nvidia mig-parted config selecting this layout (apply with `-c NAME`)."""
        entries: list[dict[str, Any]] = []
        for use in self.gpus:
            entry: dict[str, Any] = {"devices": [use.device.index]}
            entry["mig-enabled"] = use.mig_devices is not None
            if use.mig_devices:
                entry["mig-devices"] = dict(use.mig_devices)
            entries.append(entry)
        return {"version": "v1", "mig-configs": {name: entries}}


@dataclass
class _Bin:
    device: GpuDevice
    free: int
    layout: MigLayout | None
    replicas: list[str] = field(default_factory=list)
    used: int = 0
    exclusive: bool = False

    @property
    def slice_bytes(self) -> int:
        return self.device.memory_bytes // MEMORY_SLICES

    def mig_room_after(self, profile: MigProfile) -> int:
        used = 0 if self.layout is None else self.layout.memory_slices_used
        slices = MEMORY_SLICES - used - profile.memory_slices
        return slices * self.slice_bytes

    def take(self, replica: str, need: int) -> None:
        self.replicas.append(replica)
        self.used += need


def place(
    demands: Sequence[ReplicaDemand],
    devices: Sequence[GpuDevice],
    cores: CorePlan | None = None,
) -> Placement:
    """Pack every replica onto the devices (and the CPU replicas onto the cores of `cores`,
    when given); pure, deterministic for the same input."""
    bins = [_Bin(d, d.memory_bytes, MigLayout() if d.mig else None) for d in devices]
    book = None if cores is None else CoreBook(cores)
    placed: list[Assignment] = []
    unplaced: list[Unplaced] = []
    position = {demand.name: index for index, demand in enumerate(demands)}
    for demand in sorted(demands, key=lambda d: _size_key(d, position[d.name])):
        if not demand.uses_gpu:
            result: Assignment | Unplaced = _place_cpu(demand, book)
        else:
            result = _place_one(demand, bins)
        if isinstance(result, Assignment):
            placed.append(result)
        else:
            unplaced.append(result)
    order = {demand.name: index for index, demand in enumerate(demands)}
    return Placement(
        tuple(sorted(placed, key=lambda a: order[a.replica])),
        tuple(sorted(unplaced, key=lambda u: order[u.replica])),
        tuple(_use(b) for b in bins),
        None if book is None else _core_use(book, placed),
    )


def _place_cpu(demand: ReplicaDemand, book: CoreBook | None) -> Assignment | Unplaced:
    grant = None if book is None else book.offer(demand.pool)
    if book is None or grant is None:
        return Assignment(demand.name, demand.pool, 0)
    if grant.shared and not book.plan.share:
        usable = len(book.plan.usable)
        free = len(book.free())
        reason = (f"needs {book.size(demand.pool)} cores; {free} of {usable} free: the autoscaler "
                  "stops the pool here (set `cpu: {share: true}` to share cores)")  # fmt: skip
        return _unplaced(demand, reason)
    book.hold(demand.name, grant)
    return Assignment(demand.name, demand.pool, 0, cpus=grant.cpus, shared_cpus=grant.shared)


def _core_use(book: CoreBook, placed: Sequence[Assignment]) -> CoreUse:
    on: dict[int, list[str]] = {cpu: [] for cpu in book.plan.usable}
    for assignment in placed:
        for cpu in assignment.cpus:
            on[cpu].append(assignment.replica)
    return CoreUse(book.plan, {cpu: tuple(names) for cpu, names in on.items()})


def _size_key(demand: ReplicaDemand, position: int) -> tuple[int, bool, int, int, str]:
    # Most constrained first: multi-GPU replicas, then explicit MIG profiles (only a slot of
    # that profile will do), then the rest; each group largest first. CPU replicas come in
    # the order given, the order the controller starts them in.
    size = demand.need_bytes
    if demand.mig is not None:
        size = max(size, mig_profiles()[demand.mig].memory_slices * _NOMINAL_SLICE)
    order = 0 if demand.uses_gpu else position
    return -demand.gpus, demand.mig is None, -size, order, demand.name


def _use(bin_: _Bin) -> GpuUse:
    mig = None if bin_.layout is None else bin_.layout.counts()
    return GpuUse(bin_.device, bin_.used, tuple(bin_.replicas), mig)


def _place_one(demand: ReplicaDemand, bins: list[_Bin]) -> Assignment | Unplaced:
    kind = demand.gpu_kind
    matching = [b for b in bins if kind is None or gpu_matches(kind, b.device.name)]
    if not matching:
        have = ", ".join(sorted({b.device.name for b in bins})) or "none"
        return _unplaced(demand, f"no {kind} GPU in the inventory (have: {have})")
    if demand.mig is not None:
        return _place_mig(demand, mig_profiles()[demand.mig], matching)
    if demand.gpus > 1:
        return _place_whole(demand, matching)
    return _place_shared(demand, matching)


def _place_mig(
    demand: ReplicaDemand, profile: MigProfile, bins: list[_Bin]
) -> Assignment | Unplaced:
    mig_bins = [b for b in bins if b.layout is not None]
    if not mig_bins:
        return _unplaced(demand, f"a {profile.name} slice needs a GPU declared with mig: true")
    sized = [
        b for b in mig_bins if profile.memory_bytes(b.device.memory_bytes) >= demand.need_bytes
    ]
    if not sized:
        slice_gib = profile.memory_bytes(mig_bins[0].device.memory_bytes) / GIB
        return _unplaced(demand, f"needs {_gib(demand.need_bytes)}, more than a {profile.name} "
                                 f"slice's {slice_gib:.1f} GiB: pick a larger profile")  # fmt: skip
    fits = [(b, b.layout) for b in sized if b.layout and b.layout.fits(profile)]
    if not fits:
        return _unplaced(demand, f"no free {profile.name} slot left on the MIG GPUs")
    best, layout = min(fits, key=lambda f: (f[0].mig_room_after(profile), f[0].device.index))
    return _assign_mig(demand, best, layout, profile)


def _assign_mig(
    demand: ReplicaDemand, bin_: _Bin, layout: MigLayout, profile: MigProfile
) -> Assignment:
    ordinal = layout.place(profile)
    bin_.take(demand.name, demand.need_bytes)
    fraction = demand.need_bytes / profile.memory_bytes(bin_.device.memory_bytes)
    return Assignment(demand.name, demand.pool, demand.need_bytes, (bin_.device.index,),
                      profile.name, ordinal, round(fraction, 4))  # fmt: skip


def _place_whole(demand: ReplicaDemand, bins: list[_Bin]) -> Assignment | Unplaced:
    empty = [b for b in bins if b.layout is None and not b.replicas and b.free >= demand.need_bytes]
    if len(empty) < demand.gpus:
        need = _gib(demand.need_bytes)
        reason = f"needs {demand.gpus} empty whole GPUs with {need} each; {len(empty)} left"
        return _unplaced(demand, reason)
    chosen = sorted(empty, key=lambda b: (b.device.memory_bytes, b.device.index))[: demand.gpus]
    for bin_ in chosen:
        bin_.take(demand.name, demand.need_bytes)
        bin_.free, bin_.exclusive = 0, True
    devices = tuple(sorted(b.device.index for b in chosen))
    fraction = demand.need_bytes / min(b.device.memory_bytes for b in chosen)
    return Assignment(demand.name, demand.pool, demand.need_bytes, devices,
                      memory_fraction=round(fraction, 4))  # fmt: skip


def _place_shared(demand: ReplicaDemand, bins: list[_Bin]) -> Assignment | Unplaced:
    options: list[tuple[int, int, _Bin, MigProfile | None]] = []
    for bin_ in bins:
        layout = bin_.layout
        if layout is None and not bin_.exclusive and bin_.free >= demand.need_bytes:
            options.append((bin_.free - demand.need_bytes, bin_.device.index, bin_, None))
        elif layout is not None:
            profile = smallest_mig(demand.need_bytes, bin_.device.memory_bytes)
            if profile is not None and layout.fits(profile):
                options.append((bin_.mig_room_after(profile), bin_.device.index, bin_, profile))
    if not options:
        largest = max((b.free for b in bins if b.layout is None and not b.exclusive), default=0)
        reason = (f"needs {_gib(demand.need_bytes)} on one GPU; the most free on a whole GPU is "
                  f"{_gib(largest)} and no MIG slot holds it")  # fmt: skip
        return _unplaced(demand, reason)
    _, _, best, profile = min(options, key=lambda option: option[:2])
    if profile is not None and best.layout is not None:
        return _assign_mig(demand, best, best.layout, profile)
    best.take(demand.name, demand.need_bytes)
    best.free -= demand.need_bytes
    fraction = demand.need_bytes / best.device.memory_bytes
    return Assignment(demand.name, demand.pool, demand.need_bytes, (best.device.index,),
                      memory_fraction=round(fraction, 4))  # fmt: skip


def _unplaced(demand: ReplicaDemand, reason: str) -> Unplaced:
    return Unplaced(demand.name, demand.pool, demand.need_bytes, reason)


def _gib(size: int) -> str:
    return f"{size / GIB:.1f} GiB"
