"""What each replica of a fleet needs from a GPU, from the planner's VRAM formula.

A replica of a pool whose model is served at `dtype` with a `max_model_len` context needs,
per GPU, the planner's weights + KV cache (context x batch) + activations + overhead, split
over `resources.count` GPUs (tensor parallel). `dtype: auto` is planned as bf16 and
`quantization: int8` or `q4_0` as those weights. The model's shape comes from its source: a planner
preset name (llama-3-8b, ... : for planning only), demo:tiny / demo:small, package:NAME or a
Hugging Face directory (its config.json). External pools and pools without a GPU need none.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from inferplane.config.schema import FleetConfig, ModelSpec, PoolSpec
from inferplane.planner.precision import get_precision, served_format
from inferplane.planner.shapes import ModelShape, preset_shapes, shape_from_config
from inferplane.planner.vram import ServedModel, memory_breakdown

_DEFAULT_CONTEXT = 4096
Count = Literal["min", "max"]


@dataclass(frozen=True)
class ReplicaDemand:
    """One replica to place. `gpu_kind` None: any GPU; `mig`: an explicit MIG profile."""

    name: str
    pool: str
    need_bytes: int  # per GPU
    gpus: int = 1
    gpu_kind: str | None = None
    mig: str | None = None
    uses_gpu: bool = True


def model_shape(name: str, source: str) -> ModelShape:
    presets = preset_shapes()
    if source.lower() in presets:
        return presets[source.lower()]
    if source.startswith("demo:"):
        from inferplane.sources.demo import PRESETS, hf_config  # noqa: PLC0415  (imports torch)

        return shape_from_config(name, hf_config(PRESETS[source.removeprefix("demo:")]))
    from inferplane.sources.resolve import resolve_source  # noqa: PLC0415  (imports torch)

    directory = resolve_source(source)
    config = json.loads((Path(directory) / "config.json").read_text(encoding="utf-8"))
    return shape_from_config(name, config)


def served_model(name: str, spec: ModelSpec) -> ServedModel:
    shape = model_shape(name, spec.source)
    dtype = served_format(spec.dtype, spec.quantization)
    context = spec.max_model_len or min(_DEFAULT_CONTEXT, shape.max_context)
    return ServedModel(shape, get_precision(dtype), context)


def pool_demands(
    name: str, pool: PoolSpec, model: ServedModel | None, batch: int, count: Count = "max"
) -> list[ReplicaDemand]:
    replicas = pool.replicas.max if count == "max" else pool.replicas.min
    resources = pool.resources
    gpus = resources.count if resources.mig is None else 1
    need = 0
    if model is not None and resources.uses_gpu:
        need = memory_breakdown(model, batch, gpus).per_gpu_bytes
    kind = None if resources.gpu == "none" else resources.gpu
    return [
        ReplicaDemand(f"{name}-{index}", name, need, gpus, kind, resources.mig, resources.uses_gpu)
        for index in range(replicas)
    ]


def fleet_demands(fleet: FleetConfig, batch: int = 4, count: Count = "max") -> list[ReplicaDemand]:
    """Every replica the fleet runs itself, at its pools' min or max replica counts."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1 (got {batch})")
    served: dict[str, ServedModel] = {}
    demands: list[ReplicaDemand] = []
    for name, pool in fleet.pools.items():
        if pool.is_external:
            continue
        model = None
        if pool.resources.uses_gpu:
            if pool.model not in served:
                served[pool.model] = served_model(pool.model, fleet.models[pool.model])
            model = served[pool.model]
        demands.extend(pool_demands(name, pool, model, batch, count))
    return demands
