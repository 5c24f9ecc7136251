"""A plan as plain data (dicts, lists, numbers), for JSON output and for other programs."""

import math
from typing import Any

from inferplane.planner.plan import Plan
from inferplane.planner.recommend import Option


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    request, breakdown = plan.request, plan.breakdown
    shape, workload = request.model.shape, request.workload
    return {
        "model": {
            "name": shape.name,
            "parameters": shape.parameter_count,
            "layers": shape.num_layers,
            "hidden_size": shape.hidden_size,
            "heads": shape.num_heads,
            "kv_heads": shape.num_kv_heads,
            "head_dim": shape.head_dim,
        },
        "dtype": request.model.precision.name,
        "context": request.model.context,
        "batch": plan.batch,
        "weights_bytes": breakdown.weights_bytes,
        "kv_cache_bytes": breakdown.kv_cache_bytes,
        "activation_bytes": breakdown.activation_bytes,
        "overhead_bytes": breakdown.overhead_bytes,
        "total_bytes": breakdown.total_bytes,
        "workload": {
            "requests_per_s": workload.requests_per_s,
            "requests_per_day": workload.requests_per_s * 86400,
            "input_tokens": workload.input_tokens,
            "output_tokens": workload.output_tokens,
            "p95_latency_s": workload.p95_latency_s,
        },
        "capacity": request.capacity,
        "options": [option_to_dict(option) for option in plan.options],
        "fits": plan.fits,
        "problem": plan.problem(),
        "smallest_fit": None if plan.suggestion is None else plan.suggestion.describe(),
        "assumptions": list(plan.assumptions),
    }


def option_to_dict(option: Option) -> dict[str, Any]:
    return {
        "gpu": option.gpu,
        "gpus_per_replica": option.gpus_per_replica,
        "replicas": option.replicas,
        "total_gpus": option.total_gpus,
        "concurrency_per_replica": option.concurrency,
        "max_batch_at_context": option.max_batch,
        "ttft_s": option.ttft_s,
        "tpot_s": option.tpot_s,
        "p95_latency_s": _finite(option.p95_latency_s),
        "output_tokens_per_s_per_replica": option.output_tokens_per_s,
        "meets_target": option.meets_target,
        "efficiency": "measured" if option.measured else "assumed",
        "price_per_hour": option.price_per_hour,
        "cost_per_month": None if option.cost is None else option.cost.cost_per_month,
        "cost_per_million_tokens": option.cost_per_million_tokens,
        "variants": {
            capacity: {
                "gpu_hourly_usd": cost.gpu_hourly_usd,
                "price_per_hour": cost.price_per_hour,
                "cost_per_month": cost.cost_per_month,
                "cost_per_million_tokens": cost.cost_per_million_tokens,
            }
            for capacity, cost in option.costs.items()
        },
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no infinity
