"""The torch model runner: loads a Llama-family model, owns the paged KV cache, runs steps.

`execute` turns a `StepBatch` into flat tensors (token ids, positions, slots), runs one forward
over the ragged batch, computes logits only for the rows that sample, and hands them to the
sampler. Everything runs under `torch.inference_mode`.
"""

import functools
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from inferplane.engine.compute.attention import ChunkSpan, build_metadata
from inferplane.engine.compute.cpu_kernels import CpuKernels, cpu_kernels
from inferplane.engine.compute.host_memory import available_bytes
from inferplane.engine.compute.huge_pages import empty_in_huge_pages, into_huge_pages
from inferplane.engine.compute.loader import (
    ModelConfig,
    iter_tensors,
    q4_block_weights,
    read_eos_token_ids,
    read_model_config,
    resolve_dtype,
)
from inferplane.engine.compute.models.layers import (
    Linear,
    PackedLinear,
    StreamLinear,
    TransposedLinear,
)
from inferplane.engine.compute.models.llama import LinearFactory, LlamaModel
from inferplane.engine.compute.quant import Int8Linear
from inferplane.engine.compute.quant4 import q4_factory
from inferplane.engine.compute.sampler import Sampler
from inferplane.engine.core.batch import SampledToken, SequenceChunk, StepBatch
from inferplane.engine.core.config import EngineConfig
from inferplane.sources import resolve_source

log = logging.getLogger(__name__)
Clock = Callable[[], float]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_model(
    directory: Path,
    dtype: torch.dtype,
    device: torch.device,
    max_len: int,
    quantization: str = "none",
) -> LlamaModel:
    """Read the shards (memory-mapped), cast to `dtype` on `device`, and build the model."""
    config = read_model_config(directory)
    weights = {
        name: tensor.to(
            device=device, dtype=dtype if tensor.is_floating_point() else None, copy=True
        )
        for name, tensor in iter_tensors(directory)
    }
    kernels = cpu_kernels() if CpuKernels.applies(device, dtype) else None
    pack = packed_copy_fits(sum(t.numel() * t.element_size() for t in weights.values()))
    dense = dense_linear(device, dtype, kernels, pack)
    int8 = functools.partial(Int8Linear.from_float, kernels=kernels)
    make = int8 if quantization == "int8" else dense
    head: LinearFactory = make
    if quantization == "q4_0":  # 4-bit layers, the head int8 (quant4.py says why)
        weights |= q4_block_weights(directory)
        make, head = q4_factory(kernels), int8
    # int8 quantizes the LM head too (for a tied one, a copy of the embedding: the lookup
    # keeps reading the dense rows): SmolLM2-135M's float32 head was 113 MB of every token's
    # reads, the int8 one 28 MB
    model = LlamaModel(
        config, weights, max_len, dtype, make_linear=make, make_head=head, kernels=kernels
    )
    weights.clear()  # the model holds what it uses: each weight moved below is then freed
    if device.type == "cpu":
        _weights_into_huge_pages(model)
    return model


def _weights_into_huge_pages(model: LlamaModel) -> None:
    """Decode's weight streams read 1.3x faster from huge pages (huge_pages.py); oneDNN's
    packed copies are for prefill, which computes more than it reads, and stay where they are."""
    if into_huge_pages(model, skip=(PackedLinear,)) and model.stack is not None:
        model.stack = model.stack.rebuilt()  # it held the weights' old addresses


def dense_linear(
    device: torch.device, dtype: torch.dtype, kernels: CpuKernels | None = None, pack: bool = True
) -> LinearFactory:
    """The fastest dense layout measured for decode on this device and dtype (`pack`: whether
    the streaming layout may also hold a packed copy of each weight for large inputs)."""
    if kernels is not None and StreamLinear.supported(device, dtype):
        return functools.partial(StreamLinear, kernels=kernels, pack=pack)
    if PackedLinear.supported(device, dtype):
        return PackedLinear
    if TransposedLinear.supported(device, dtype):
        return TransposedLinear
    return Linear


def packed_copy_fits(weight_bytes: int, available: int | None = None) -> bool:
    """Whether a second, packed copy of the weights (StreamLinear's for prefill in bfloat16)
    may be held: at most half of the memory still available (the host's, or what the
    container's limit leaves). Without it prefill runs on the plain weight, slower, but a
    model that fits once is not pushed out of memory by its own copy."""
    room = available_bytes() if available is None else available
    fits = room is None or weight_bytes <= room // 2
    if not fits:
        log.info(
            "weights held once: a packed copy (%d MiB) would take over half of the %d MiB left",
            weight_bytes >> 20,
            (room or 0) >> 20,
        )
    return fits


def kv_block_bytes(config: ModelConfig, block_size: int, dtype: torch.dtype) -> int:
    element = torch.empty((), dtype=dtype).element_size()
    return block_size * 2 * config.num_layers * config.num_kv_heads * config.head_dim * element


class TorchModelRunner:
    """Implements the engine's ModelRunner protocol with eager torch."""

    def __init__(
        self,
        model: LlamaModel,
        engine_config: EngineConfig,
        device: torch.device,
        eos_token_ids: Sequence[int],
        load_seconds: float = 0.0,
    ) -> None:
        self.model = model
        self.device = device
        self.dtype = model.embed.dtype
        self._block_size = engine_config.block_size
        self._max_model_len = _max_model_len(engine_config, model.config)
        block_bytes = kv_block_bytes(model.config, self._block_size, self.dtype)
        self._num_blocks = engine_config.kv_cache_bytes // block_bytes
        if self._num_blocks < 1:
            raise ValueError(
                f"kv_cache_bytes={engine_config.kv_cache_bytes} holds no block of "
                f"{block_bytes} bytes: raise kv_cache_bytes or lower block_size"
            )
        self.eos_token_ids = tuple(eos_token_ids)
        self.load_seconds = load_seconds
        self.sampler = Sampler(engine_config.seed, device)
        self._kv: torch.Tensor | None = self._allocate_kv()
        self.sleeping = False

    @classmethod
    def from_config(
        cls, config: EngineConfig, clock: Clock = time.perf_counter
    ) -> "TorchModelRunner":
        started = clock()
        directory = resolve_source(config.model)
        model_config = read_model_config(directory)
        device = resolve_device(config.device)
        dtype = resolve_dtype(config.dtype, model_config, device)
        max_len = _max_model_len(config, model_config)
        with torch.inference_mode():
            model = load_model(directory, dtype, device, max_len, config.quantization)
        eos = read_eos_token_ids(directory)
        return cls(model, config, device, eos, load_seconds=clock() - started)

    @property
    def block_size(self) -> int:
        return self._block_size

    @property
    def num_blocks(self) -> int:
        return self._num_blocks

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    def execute(self, batch: StepBatch) -> list[SampledToken]:
        """Forward the batch, write its KV, sample one token per sampling chunk (in order)."""
        sampling = [c for c in batch.chunks if c.sample]
        with torch.inference_mode():
            hidden = self._forward(batch.chunks)
            if not sampling:
                return []
            ends = _sample_rows(batch.chunks)
            logits = self.model.logits(hidden[ends])
            return self.sampler.sample(logits, sampling)

    def forward_logits(self, batch: StepBatch) -> torch.Tensor:
        """float32 logits for every token of the batch (for parity checks and perplexity)."""
        with torch.inference_mode():
            return self.model.logits(self._forward(batch.chunks))

    def _forward(self, chunks: Sequence[SequenceChunk]) -> torch.Tensor:
        if self._kv is None:
            raise RuntimeError("the runner is asleep: call wake() before execute()")
        token_ids = [t for chunk in chunks for t in chunk.token_ids]
        positions = [p for chunk in chunks for p in range(chunk.start_position, chunk.end_position)]
        if positions and max(positions) >= self._max_model_len:
            raise ValueError(f"position {max(positions)} exceeds max_model_len")
        spans = [ChunkSpan(c.start_position, len(c.token_ids), c.block_table) for c in chunks]
        meta = build_metadata(spans, self._block_size, self.device)
        ids = torch.tensor(token_ids, dtype=torch.long, device=self.device)
        pos = torch.tensor(positions, dtype=torch.long, device=self.device)
        hidden: torch.Tensor = self.model(ids, pos, meta, self._kv)
        return hidden

    def sleep(self) -> None:
        """Free the KV cache; on an accelerator also move the weights to pinned host memory.

        The cache's contents are lost: the engine must forget its cached prefixes.
        """
        self._kv = None
        if self.device.type != "cpu":
            _move_buffers(self.model, lambda t: t.to("cpu").pin_memory())
            torch.cuda.empty_cache()
        self.sleeping = True

    def wake(self) -> None:
        if self.device.type != "cpu":
            _move_buffers(self.model, lambda t: t.to(self.device, non_blocking=True))
        self._kv = self._allocate_kv()
        self.sleeping = False

    def _allocate_kv(self) -> torch.Tensor:
        config = self.model.config
        slots = self._num_blocks * self._block_size
        shape = (config.num_layers, 2, slots, config.num_kv_heads, config.head_dim)
        if self.device.type == "cpu":  # decode attention streams it too (huge_pages.py)
            cache = empty_in_huge_pages(shape, self.dtype)
            if cache is not None:
                return cache
        return torch.zeros(shape, dtype=self.dtype, device=self.device)


def _sample_rows(chunks: Sequence[SequenceChunk]) -> list[int]:
    rows, end = [], 0
    for chunk in chunks:
        end += len(chunk.token_ids)
        if chunk.sample:
            rows.append(end - 1)
    return rows


def _max_model_len(config: EngineConfig, model: ModelConfig) -> int:
    limit = model.max_position_embeddings
    if config.max_model_len is None:
        return limit
    if config.max_model_len > limit:
        raise ValueError(
            f"max_model_len={config.max_model_len} exceeds the model's "
            f"max_position_embeddings={limit}: lower max_model_len"
        )
    return config.max_model_len


def _move_buffers(module: torch.nn.Module, move: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Move every buffer once; a tensor shared by two modules (tied embeddings) stays shared."""
    moved: dict[int, torch.Tensor] = {}
    for sub in module.modules():
        for name, buffer in sub.named_buffers(recurse=False):
            if buffer is not None:
                key = id(buffer)
                moved.setdefault(key, move(buffer))
                sub.register_buffer(name, moved[key])
