"""Settings of one engine: which model, how much KV memory, how big a step may be."""

from dataclasses import dataclass
from typing import Literal

DTypeName = Literal["auto", "float32", "bfloat16", "float16"]
QuantName = Literal["none", "int8", "q4_0"]
SchedulingPolicy = Literal["fcfs", "priority"]


@dataclass(frozen=True)
class EngineConfig:
    """Defaults suit a CPU laptop; the model server builds this from its flags or a fleet file.

    kv_cache_bytes sizes the block pool: num_blocks = kv_cache_bytes // (block_size x bytes per
    token), with bytes per token = 2 x layers x kv_heads x head_dim x dtype bytes.
    """

    model: str  # a model source: a directory, demo:tiny, demo:small, package:NAME, gguf:PATH
    dtype: DTypeName = "auto"
    quantization: QuantName = "none"
    device: str = "auto"  # auto: cuda when present, else cpu
    max_model_len: int | None = None  # None: the model's max_position_embeddings
    block_size: int = 16
    kv_cache_bytes: int = 512 * 1024 * 1024
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 2048
    enable_prefix_caching: bool = True
    max_waiting: int = 1024  # beyond this the server answers 429
    scheduling_policy: SchedulingPolicy = "fcfs"  # priority: lower `priority` values go first
    seed: int = 0
    # Tokens per streamed update after the first (vLLM's --stream-interval): 1 sends each token
    # as it is made; N sends every N-th, cutting the per-token work of everything downstream
    # (messages, SSE events, socket writes) N-fold. The first and the last token go at once.
    stream_interval: int = 1

    def __post_init__(self) -> None:
        if self.block_size < 1 or self.block_size & (self.block_size - 1):
            raise ValueError(f"block_size must be a power of two, got {self.block_size}")
        if self.max_num_seqs < 1:
            raise ValueError(f"max_num_seqs must be >= 1, got {self.max_num_seqs}")
        if self.max_num_batched_tokens < self.block_size:
            raise ValueError("max_num_batched_tokens must be at least one block")
        if self.kv_cache_bytes <= 0:
            raise ValueError("kv_cache_bytes must be positive")
        if self.stream_interval < 1:
            raise ValueError(f"stream_interval must be >= 1, got {self.stream_interval}")
        if self.scheduling_policy not in ("fcfs", "priority"):
            raise ValueError(
                f"scheduling_policy must be 'fcfs' or 'priority', got {self.scheduling_policy!r}"
            )
