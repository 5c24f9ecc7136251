"""Efficiency factors: the fraction of a GPU's peak that serving reaches, measured or assumed.

    bandwidth  fraction of peak memory bandwidth a decode step reaches (bytes moved / time)
    compute    fraction of peak tensor throughput a prefill reaches (model FLOPs utilisation)

Defaults, stated as assumptions: bandwidth 0.70, compute 0.50 (typical of tuned engines with
paged attention and CUDA graphs on data-centre GPUs). Where a benchmark measured a fraction,
it replaces the default for that GPU. Benchmarks report them in bench/results/*.json as

    {"roofline": [{"gpu": "H100-SXM", "bandwidth_fraction": 0.78, "compute_fraction": 0.61}]}

(either fraction may be absent); the CLI reads the files and passes the records here, each
with the name of the file it came from. The fit is the median of the measurements per GPU.
"""

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

ASSUMED = "assumed"
DEFAULT_BANDWIDTH = 0.70
DEFAULT_COMPUTE = 0.50


@dataclass(frozen=True)
class Factor:
    value: float
    source: str = ASSUMED  # "assumed" or "measured: FILE (n=K)"

    @property
    def measured(self) -> bool:
        return self.source != ASSUMED


@dataclass(frozen=True)
class Efficiency:
    bandwidth: Factor = Factor(DEFAULT_BANDWIDTH)
    compute: Factor = Factor(DEFAULT_COMPUTE)


@dataclass(frozen=True)
class Measurement:
    gpu: str
    kind: str  # "bandwidth" | "compute"
    fraction: float
    source: str


@dataclass(frozen=True)
class EfficiencyTable:
    """Efficiency per GPU: measured where a benchmark says so, the default elsewhere."""

    default: Efficiency = Efficiency()
    per_gpu: Mapping[str, Efficiency] = field(default_factory=dict)

    def for_gpu(self, gpu: str) -> Efficiency:
        return self.per_gpu.get(gpu, self.default)

    def measured_gpus(self) -> list[str]:
        return sorted(self.per_gpu)


def measurements_from_json(data: object, source: str) -> list[Measurement]:
    """The roofline records in one parsed bench result; other content is ignored."""
    records = data.get("roofline", []) if isinstance(data, dict) else []
    found: list[Measurement] = []
    for record in records if isinstance(records, list) else []:
        if not isinstance(record, dict) or not isinstance(record.get("gpu"), str):
            continue
        for kind in ("bandwidth", "compute"):
            value = record.get(f"{kind}_fraction")
            if isinstance(value, int | float) and 0 < value <= 1:
                found.append(Measurement(record["gpu"], kind, float(value), source))
    return found


def fit_efficiency(measurements: Iterable[Measurement]) -> EfficiencyTable:
    """Median measured fraction per GPU and kind; the defaults fill what was not measured."""
    grouped: dict[tuple[str, str], list[Measurement]] = {}
    for item in measurements:
        grouped.setdefault((item.gpu, item.kind), []).append(item)
    default = Efficiency()
    per_gpu: dict[str, Efficiency] = {}
    for (gpu, kind), items in sorted(grouped.items()):
        current = per_gpu.get(gpu, default)
        factor = _fit(items)
        per_gpu[gpu] = (
            Efficiency(factor, current.compute)
            if kind == "bandwidth"
            else Efficiency(current.bandwidth, factor)
        )
    return EfficiencyTable(default, per_gpu)


def _fit(items: list[Measurement]) -> Factor:
    sources = ", ".join(sorted({item.source for item in items}))
    value = statistics.median(item.fraction for item in items)
    return Factor(value, f"measured: {sources} (n={len(items)})")
