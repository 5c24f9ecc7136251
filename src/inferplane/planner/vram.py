"""The VRAM formula: weights, KV cache, activations and framework overhead for one replica.

For a replica of `tp` GPUs (tensor parallel) serving `batch` sequences of `context` tokens:

    weights      linear_params x bytes(format) + (embedding + norm + bias params) x 16-bit bytes
    KV cache     2 x layers x kv_heads x head_dim x context x batch x kv_bytes
                 (K and V; GQA aware: only the KV heads are cached. Under tensor parallelism each
                 GPU holds ceil(kv_heads / tp) heads, so KV heads are replicated when tp > kv_heads)
    activations  per GPU, the peak of one forward step over min(batch x context, chunk) tokens
                 (chunked prefill, chunk = 8192 by default):
                 tokens x (2 x hidden + (q + 2 kv width + 2 x intermediate) / tp) x act_bytes
                 + batch x vocab x 4 bytes of fp32 logits
    overhead     per GPU a fixed 1.5 GiB (CUDA context, cuBLAS / NCCL workspaces, CUDA graphs)
                 + 5 % of weights, KV cache and activations for allocator fragmentation

These constants are assumptions (MemoryAssumptions); the report prints them. A replica fits
a GPU when its total divided by tp is at most the GPU's memory.
"""

import math
from dataclasses import dataclass

from inferplane.planner.precision import Precision
from inferplane.planner.shapes import ModelShape

GIB = 1024**3
_LOGIT_BYTES = 4
_MAX_BATCH = 1 << 16


@dataclass(frozen=True)
class MemoryAssumptions:
    fixed_overhead_bytes: int = GIB * 3 // 2
    fragmentation: float = 0.05
    prefill_chunk_tokens: int = 8192

    def describe(self) -> list[str]:
        return [
            f"framework overhead: {self.fixed_overhead_bytes / GIB:.1f} GiB per GPU "
            "(CUDA context, cuBLAS/NCCL workspaces, CUDA graphs) + "
            f"{self.fragmentation:.0%} of the rest for fragmentation",
            f"activations: one chunked-prefill step of {self.prefill_chunk_tokens} tokens",
        ]


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes for one replica, summed over its tensor-parallel GPUs."""

    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    overhead_bytes: int
    tensor_parallel: int = 1

    @property
    def total_bytes(self) -> int:
        return (
            self.weights_bytes + self.kv_cache_bytes + self.activation_bytes + self.overhead_bytes
        )

    @property
    def per_gpu_bytes(self) -> int:
        return math.ceil(self.total_bytes / self.tensor_parallel)


def bytes_for_parameters(parameters: float, precision: Precision) -> float:
    """The rule of thumb: every parameter stored in the weight format."""
    return parameters * precision.linear_bytes


def weights_bytes(shape: ModelShape, precision: Precision) -> int:
    linear = shape.linear_parameters * precision.linear_bytes
    others = (shape.embedding_parameters + shape.small_parameters) * precision.other_bytes
    return math.ceil(linear + others)


def kv_heads_per_gpu(shape: ModelShape, tensor_parallel: int = 1) -> int:
    return math.ceil(shape.num_kv_heads / tensor_parallel)


def kv_bytes_per_token(shape: ModelShape, kv_bytes: int, tensor_parallel: int = 1) -> int:
    """KV cache bytes one token adds on one GPU of the replica."""
    heads = kv_heads_per_gpu(shape, tensor_parallel)
    return 2 * shape.num_layers * heads * shape.head_dim * kv_bytes


def kv_cache_bytes(
    shape: ModelShape, tokens: int, batch: int, kv_bytes: int, tensor_parallel: int = 1
) -> int:
    """2 x layers x kv_heads x head_dim x tokens x batch x bytes, over all GPUs of the replica."""
    per_gpu = kv_bytes_per_token(shape, kv_bytes, tensor_parallel) * tokens * batch
    return per_gpu * tensor_parallel


@dataclass(frozen=True)
class ServedModel:
    """A model as it will be served: its shape, weight format, context and memory assumptions."""

    shape: ModelShape
    precision: Precision
    context: int
    memory: MemoryAssumptions = MemoryAssumptions()

    def __post_init__(self) -> None:
        if self.context <= 0:
            raise ValueError(f"context must be a positive number of tokens (got {self.context})")


def activation_bytes_per_gpu(model: ServedModel, batch: int, tensor_parallel: int = 1) -> int:
    shape = model.shape
    tokens = min(model.context * batch, model.memory.prefill_chunk_tokens)
    q_width = shape.num_heads * shape.head_dim
    kv_width = shape.num_kv_heads * shape.head_dim
    sharded = (q_width + 2 * kv_width + 2 * shape.intermediate_size) // tensor_parallel
    width = 2 * shape.hidden_size + sharded
    logits = batch * shape.vocab_size * _LOGIT_BYTES
    return tokens * width * model.precision.activation_bytes + logits


def memory_breakdown(model: ServedModel, batch: int, tensor_parallel: int = 1) -> MemoryBreakdown:
    weights = weights_bytes(model.shape, model.precision)
    kv = kv_cache_bytes(
        model.shape, model.context, batch, model.precision.kv_bytes, tensor_parallel
    )
    act = tensor_parallel * activation_bytes_per_gpu(model, batch, tensor_parallel)
    overhead = tensor_parallel * model.memory.fixed_overhead_bytes + math.ceil(
        model.memory.fragmentation * (weights + kv + act)
    )
    return MemoryBreakdown(weights, kv, act, overhead, tensor_parallel)


def max_batch(model: ServedModel, gpu_memory_bytes: int, tensor_parallel: int = 1) -> int:
    """The largest batch of `context`-token sequences that fits; 0 when not even one does."""

    def fits(batch: int) -> bool:
        need = memory_breakdown(model, batch, tensor_parallel).per_gpu_bytes
        return need <= gpu_memory_bytes

    low, high = 0, _MAX_BATCH
    while low < high:  # the memory need grows with the batch, so bisect
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low
