"""A whole plan: the memory breakdown, the ranked options, the assumptions, and advice when
nothing fits.

When no option fits the GPUs and replica size asked for, `smallest_fit` searches the whole
catalog (up to 8 GPUs per replica), relaxing one thing at a time: first any GPU kind at the
same weight format and context, then lighter weight formats, then halved contexts (down to
512 tokens). Among the fits of the first relaxation that has any, the smallest is the one with
the least GPU memory in total (then the lowest $/hour).
"""

from dataclasses import dataclass, replace

from inferplane.planner.gpus import GpuSpec, gpu_catalog
from inferplane.planner.precision import get_precision, lighter_precisions
from inferplane.planner.recommend import Option, PlanRequest, rank_options, tensor_parallel_degrees
from inferplane.planner.vram import GIB, MemoryBreakdown, ServedModel, max_batch, memory_breakdown

_MIN_CONTEXT = 512


@dataclass(frozen=True)
class Suggestion:
    gpu: str
    gpus_per_replica: int
    dtype: str
    context: int
    per_gpu_bytes: int
    gpu_memory_bytes: int

    def describe(self) -> str:
        return (
            f"{self.gpus_per_replica} x {self.gpu} at {self.dtype} with a {self.context}-token "
            f"context ({self.per_gpu_bytes / GIB:.1f} of {self.gpu_memory_bytes / GIB:.1f} GiB "
            "per GPU)"
        )


@dataclass(frozen=True)
class Plan:
    request: PlanRequest
    batch: int
    breakdown: MemoryBreakdown  # one GPU, `batch` sequences of the full context
    options: tuple[Option, ...]
    suggestion: Suggestion | None
    assumptions: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return bool(self.options)

    def problem(self) -> str | None:
        """A message saying why nothing fits and what would, or None when something fits."""
        if self.options:
            return None
        model = self.request.model
        need = self.breakdown.total_bytes
        asked = ", ".join(gpu.name for gpu in self.request.gpus)
        text = (
            f"{model.shape.name} at {model.precision.name} with a {model.context}-token context "
            f"x batch {self.batch} needs {need / GIB:.1f} GiB "
            f"({self.breakdown.weights_bytes / GIB:.1f} GiB of weights): it fits no replica of "
            f"up to {self.request.max_gpus_per_replica} x {asked}."
        )
        if self.suggestion is None:
            return text + " Nothing in the catalog holds it, even at int4 and 512 tokens."
        return text + f" The smallest option that fits: {self.suggestion.describe()}."


def make_plan(request: PlanRequest, batch: int, assumptions: tuple[str, ...] = ()) -> Plan:
    if batch < 1:
        raise ValueError(f"batch must be at least 1 (got {batch})")
    options = tuple(rank_options(request))
    suggestion = None if options else smallest_fit(request)
    lines = (
        request.model.precision.describe(),
        *request.model.memory.describe(),
        *request.perf.describe(),
        *assumptions,
    )
    return Plan(request, batch, memory_breakdown(request.model, batch), options, suggestion, lines)


def smallest_fit(request: PlanRequest) -> Suggestion | None:
    model = request.model
    wide = replace(request, gpus=tuple(gpu_catalog().values()), max_gpus_per_replica=8)
    for context in _contexts(model.context):
        for dtype in (model.precision.name, *lighter_precisions(model.precision.name)):
            relaxed = replace(model, precision=get_precision(dtype), context=context)
            fits = _fits(replace(wide, model=relaxed))
            if fits:
                return min(fits, key=lambda fit: _size_key(request, fit))
    return None


def _contexts(context: int) -> list[int]:
    found = [context]
    while found[-1] // 2 >= _MIN_CONTEXT:
        found.append(found[-1] // 2)
    return found


def _fits(request: PlanRequest) -> list[Suggestion]:
    model = request.model
    fits: list[Suggestion] = []
    for gpu in request.gpus:
        for tp in tensor_parallel_degrees(request, gpu):
            if max_batch(model, gpu.memory_bytes, tp) >= 1:
                need = memory_breakdown(model, 1, tp).per_gpu_bytes
                fits.append(_suggestion(model, gpu, tp, need))
    return fits


def _suggestion(model: ServedModel, gpu: GpuSpec, tp: int, need: int) -> Suggestion:
    return Suggestion(gpu.name, tp, model.precision.name, model.context, need, gpu.memory_bytes)


def _size_key(request: PlanRequest, fit: Suggestion) -> tuple[int, float]:
    hourly = request.prices(fit.gpu, request.capacity)
    price = hourly * fit.gpus_per_replica if hourly is not None else float("inf")
    return fit.gpus_per_replica * fit.gpu_memory_bytes, price
