"""MIG profiles of 80 GB A100 / H100 GPUs, and the layout of slices on one GPU.

Such a GPU has 7 compute slices and 8 memory slices (about 10 GB each). A profile takes some
of each, and may only start at certain memory slices (NVIDIA's placement rules):

    profile   compute  memory  starts
    1g.10gb   1        1       0 1 2 3 4 5 6
    1g.20gb   1        2       0 2 4 6
    2g.20gb   2        2       0 2 4
    3g.40gb   3        4       0 4
    4g.40gb   4        4       0
    7g.80gb   7        8       0

A layout is valid when its slices can be given legal starts whose memory ranges do not
overlap, and their compute slices add up to at most 7. So 3g + 3g fits (the 7th compute
slice stays idle), 4g + 3g fits, 4g + 4g does not, and 7 x 1g.10gb fits but an 8th does not.
"""

from dataclasses import dataclass, field

COMPUTE_SLICES = 7
MEMORY_SLICES = 8


@dataclass(frozen=True)
class MigProfile:
    name: str
    compute: int
    memory_slices: int
    starts: tuple[int, ...]

    def memory_bytes(self, gpu_memory_bytes: int) -> int:
        return gpu_memory_bytes * self.memory_slices // MEMORY_SLICES


def mig_profiles() -> dict[str, MigProfile]:
    """The profiles, smallest first (a fresh dict)."""
    table = [
        MigProfile("1g.10gb", 1, 1, (0, 1, 2, 3, 4, 5, 6)),
        MigProfile("1g.20gb", 1, 2, (0, 2, 4, 6)),
        MigProfile("2g.20gb", 2, 2, (0, 2, 4)),
        MigProfile("3g.40gb", 3, 4, (0, 4)),
        MigProfile("4g.40gb", 4, 4, (0,)),
        MigProfile("7g.80gb", 7, 8, (0,)),
    ]
    return {profile.name: profile for profile in table}


def smallest_profile(need_bytes: int, gpu_memory_bytes: int) -> MigProfile | None:
    """The profile with the least memory (then compute) that holds `need_bytes`."""
    fitting = [
        profile
        for profile in mig_profiles().values()
        if profile.memory_bytes(gpu_memory_bytes) >= need_bytes
    ]
    return min(fitting, key=lambda p: (p.memory_slices, p.compute), default=None)


@dataclass
class MigLayout:
    """The slices of one GPU, as profiles; where each starts is solved when asked.

    mig-parted and the driver take a count per profile, not positions, so a set of slices is
    valid when SOME assignment of legal starts fits them: 3g + 2g + 1g + 1g is valid (3g at 4,
    2g at 0, 1g at 2 and 3) though placing the 3g at 0 first would leave no room.
    """

    profiles: list[MigProfile] = field(default_factory=list)

    @property
    def compute_used(self) -> int:
        return sum(profile.compute for profile in self.profiles)

    @property
    def memory_slices_used(self) -> int:
        return sum(profile.memory_slices for profile in self.profiles)

    def fits(self, profile: MigProfile) -> bool:
        return solve_starts([*self.profiles, profile]) is not None

    def place(self, profile: MigProfile) -> int:
        """Add a slice; return its ordinal among this GPU's slices of that profile."""
        if not self.fits(profile):
            raise ValueError(f"no room for {profile.name} in MIG layout {self.counts()}")
        ordinal = sum(1 for placed in self.profiles if placed.name == profile.name)
        self.profiles.append(profile)
        return ordinal

    def counts(self) -> dict[str, int]:
        """Slices per profile, in profile order, as mig-parted's mig-devices wants them."""
        found: dict[str, int] = {}
        for name in mig_profiles():
            count = sum(1 for profile in self.profiles if profile.name == name)
            if count:
                found[name] = count
        return found


def solve_starts(profiles: list[MigProfile]) -> list[tuple[MigProfile, int]] | None:
    """Legal, non-overlapping starts for every profile, or None when no assignment exists."""
    if sum(profile.compute for profile in profiles) > COMPUTE_SLICES:
        return None
    ordered = sorted(profiles, key=lambda p: (-p.memory_slices, -p.compute))
    return _search(ordered, frozenset())


def _search(
    profiles: list[MigProfile], taken: frozenset[int]
) -> list[tuple[MigProfile, int]] | None:
    if not profiles:
        return []
    first, rest = profiles[0], profiles[1:]
    for start in first.starts:
        wanted = frozenset(range(start, start + first.memory_slices))
        if wanted & taken:
            continue
        found = _search(rest, taken | wanted)
        if found is not None:
            return [(first, start), *found]
    return None
