"""How long one engine step takes, instead of running a model: the planner's roofline.

A step computes `prefill` prompt tokens (chunks of prompts, as the scheduler cut them) and one
token for each of `decodes` generating sequences whose mean context is `context` tokens. From
the planner's performance model (planner/performance.py) of the replica:

    step = decode_step_s(decodes, context) + prefill_s(prefill) - prefill_s(0)

decode_step_s already holds one weight read and the step overhead; prefill_s(0) is a bare
weight read, so the prefill adds only its time beyond the weight read the step shares. With
no decodes this is prefill_s(prefill) plus the overhead; with no prefill, a decode step.
Chunked prefill's attention over earlier chunks is not counted (the planner's prefill is
quadratic in the chunk only): a small underestimate for long prompts.

A `LinearStepTime` (fixed seconds per step, per prompt token, per decode) is the other model:
for measured engines, and for tests whose timings must be computable by hand.

`decode_steps_s` gives the durations of consecutive decode-only steps of the same sequences,
the context one token longer each step (a decode stretch). The roofline's decode step is the
larger of two functions linear in the context plus terms of the batch alone, so it is convex
in the context: when the first step's slope equals the slope across the whole run, every step
is on the same line and the durations follow from three evaluations instead of one per step.
"""

import functools
from dataclasses import dataclass
from typing import Protocol

from inferplane.planner.efficiency import Efficiency
from inferplane.planner.gpus import GpuSpec
from inferplane.planner.performance import Replica
from inferplane.planner.vram import ServedModel, kv_bytes_per_token, memory_breakdown


class StepTimeModel(Protocol):
    def step_s(self, prefill: int, decodes: int, context: float) -> float:
        """Seconds for one step of `prefill` prompt tokens and `decodes` sequences at a mean
        context of `context` tokens."""
        ...

    def decode_steps_s(self, decodes: int, context: float, steps: int) -> list[float]:
        """Durations of `steps` decode-only steps, the mean context growing by one each."""
        ...


_SAME_LINE = 1e-9  # relative: float rounding, not a bend in the roofline


@dataclass(frozen=True)
class LinearStepTime:
    """step = base_s + prefill x per_prompt_token_s + decodes x per_decode_s."""

    base_s: float = 0.01
    per_prompt_token_s: float = 0.0
    per_decode_s: float = 0.0

    def step_s(self, prefill: int, decodes: int, context: float) -> float:
        return self.base_s + prefill * self.per_prompt_token_s + decodes * self.per_decode_s

    def decode_steps_s(self, decodes: int, context: float, steps: int) -> list[float]:
        return [self.step_s(0, decodes, context)] * steps


class PlannerStepTime:
    """The planner's roofline for one replica (a model at a precision on `tp` GPUs)."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self._prefill = functools.lru_cache(maxsize=8192)(replica.prefill_s)
        self._weight_read = replica.prefill_s(0)

    def step_s(self, prefill: int, decodes: int, context: float) -> float:
        extra = self._prefill(prefill) - self._weight_read if prefill else 0.0
        return self.replica.decode_step_s(decodes, context) + extra

    def decode_steps_s(self, decodes: int, context: float, steps: int) -> list[float]:
        step = self.replica.decode_step_s
        first = step(decodes, context)
        if steps < 3:
            return [first, step(decodes, context + 1)][:steps]
        slope = step(decodes, context + 1) - first
        last = step(decodes, context + steps - 1)
        if abs(last - first - slope * (steps - 1)) <= _SAME_LINE * last:
            return [first + slope * i for i in range(steps)]
        return [step(decodes, context + i) for i in range(steps)]


def planner_replica(
    model: ServedModel, gpu: GpuSpec, tensor_parallel: int, efficiency: Efficiency | None = None
) -> Replica:
    return Replica(model, gpu, tensor_parallel, efficiency or Efficiency())


def kv_cache_blocks(model: ServedModel, gpu: GpuSpec, tensor_parallel: int, block_size: int) -> int:
    """KV blocks one replica holds: the GPUs' memory less what the planner's VRAM formula says
    weights, activations and overhead take (fragmentation applies to the cache too)."""
    without_cache = memory_breakdown(model, 1, tensor_parallel)
    others = without_cache.total_bytes - without_cache.kv_cache_bytes
    free = (gpu.memory_bytes * tensor_parallel - others) / (1 + model.memory.fragmentation)
    per_token = kv_bytes_per_token(model.shape, model.precision.kv_bytes, tensor_parallel)
    blocks = int(free // (per_token * tensor_parallel * block_size))
    if blocks < 1:
        raise ValueError(
            f"{model.shape.name} at {model.precision.name} leaves no KV cache on "
            f"{tensor_parallel} x {gpu.name}: use more GPUs per replica or a lighter dtype"
        )
    return blocks
