"""GGUF tensors as the Hugging Face Llama tensors the engine loads.

Three things GGUF stores differently are undone here:

- names: `blk.3.attn_q.weight` is `model.layers.3.self_attn.q_proj.weight`; a file without
  `output.weight` ties the LM head to the embedding;
- rotary row order: llama.cpp rotates adjacent pairs of a head's dimensions, transformers
  rotates its two halves, so the converter interleaves the rows of q and k per head; the
  rows are put back in halves order;
- storage: quantized blocks are dequantized with the `gguf` package to float32 (exact: the
  blocks' products fit a float32), F16 and BF16 stay as they are, and Q8_0 projections
  become the engine's int8 weight-only layout (below).

Q8_0 holds int8 codes with one float16 scale per block of 32 values; the engine's int8 path
holds one scale per output row. A Q8_0 projection becomes int8 codes with the row's largest
block scale: blocks at that scale keep their codes exactly, the others are rescaled by their
ratio to it and rounded, which adds at most half a step of the row scale (the error the
engine's own int8 quantization makes). The weights never pass through the model's float
dtype. Projections the engine fuses (q/k/v, gate/up) take this path only when every part is
Q8_0; otherwise they are dequantized like the other types.

The import always holds Q4_0 and Q4_1 dequantized (the default load runs them in float). Where
4-bit weights are asked (`quantization: q4_0`), the loader reads those projections' blocks
from the GGUF file itself (stored_q4_weights): codes and float16 scales (and Q4_1's mins) as
stored, no requantization, for fused groups whose every part is Q4_0 or Q4_1.
"""

import json
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from gguf import GGMLQuantizationType, ReaderTensor
from gguf.quants import dequantize

from inferplane.sources.errors import SourceError
from inferplane.sources.gguf_meta import GgufFile, LlamaShape, llama_shape

Q = GGMLQuantizationType
FLOAT_TYPES = {Q.F32: torch.float32, Q.F16: torch.float16, Q.BF16: torch.bfloat16}
DEQUANTIZED_TYPES = (Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K)
SUPPORTED_TYPES = (*FLOAT_TYPES, *DEQUANTIZED_TYPES)
Q8_BLOCK = 32
Q4_TYPES = (Q.Q4_0, Q.Q4_1)  # kept as blocks where 4-bit weights are asked (stored_q4_weights)
CONFIG_TENSORS = ("rope_freqs.weight",)  # Llama 3 rotary factors: rope_scaling in config.json

_GLOBAL = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_LAYER = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
# Projections the engine runs as one product: int8 only together.
_FUSED = (("attn_q", "attn_k", "attn_v"), ("attn_output",), ("ffn_gate", "ffn_up"), ("ffn_down",))


@dataclass(frozen=True)
class GgufName:
    """`blk.3.attn_q.weight` -> layer 3, part attn_q, suffix weight (layer None: global)."""

    layer: int | None
    part: str
    suffix: str

    @classmethod
    def parse(cls, name: str) -> "GgufName":
        stem, _, suffix = name.rpartition(".")
        if stem.startswith("blk."):
            _, index, part = stem.split(".", 2)
            return cls(int(index), part, suffix)
        return cls(None, stem, suffix)

    def hf(self, original: str) -> str:
        table = _GLOBAL if self.layer is None else _LAYER
        if self.part not in table or self.suffix not in ("weight", "bias"):
            raise SourceError(f"tensor {original!r} has no counterpart in a Llama model")
        prefix = "" if self.layer is None else f"model.layers.{self.layer}."
        return f"{prefix}{table[self.part]}.{self.suffix}"


def check_types(tensors: Iterable[ReaderTensor]) -> None:
    for tensor in tensors:
        if tensor.tensor_type not in SUPPORTED_TYPES:
            names = ", ".join(t.name for t in SUPPORTED_TYPES)
            raise SourceError(
                f"tensor {tensor.name!r} is stored as {tensor.tensor_type.name}, which is not "
                f"supported (supported: {names})"
            )


def int8_tensors(tensors: Iterable[ReaderTensor]) -> set[str]:
    """The GGUF names of Q8_0 projection weights that go to the int8 path as they are."""
    return _whole_groups(tensors, {Q.Q8_0})


def _whole_groups(tensors: Iterable[ReaderTensor], kinds: Container[object]) -> set[str]:
    """The names of projection weights whose fused group (see _FUSED) is all of `kinds`."""
    types = {tensor.name: tensor.tensor_type for tensor in tensors}
    layers = {GgufName.parse(name).layer for name in types} - {None}
    chosen: set[str] = set()
    for layer in layers:
        for group in _FUSED:
            names = [f"blk.{layer}.{part}.weight" for part in group]
            if all(types.get(name) in kinds for name in names):
                chosen.update(names)
    return chosen


def convert(
    tensor: ReaderTensor, shape: LlamaShape, int8: bool
) -> Iterator[tuple[str, torch.Tensor]]:
    """The HF tensors for one GGUF tensor: one, or an int8 weight and its row scales, or
    none for a tensor that config.json carries instead (rope_freqs)."""
    if tensor.name in CONFIG_TENSORS:
        return
    name = GgufName.parse(tensor.name)
    target = name.hf(tensor.name)
    order = _row_order(name.part, shape)
    if int8:
        codes, scales = q8_0_rows(tensor)
        yield target, _reorder(torch.from_numpy(codes), order)
        yield f"{target}_scale", _reorder(torch.from_numpy(scales), order)
        return
    yield target, _reorder(_values(tensor), order)


def _values(tensor: ReaderTensor) -> torch.Tensor:
    """The tensor's values in torch's [out, in] order, as stored or dequantized to float32."""
    kind = tensor.tensor_type
    values = np.array(dequantize(tensor.data, kind), dtype=np.float32, copy=True)
    result = torch.from_numpy(values)
    return result.to(FLOAT_TYPES[kind]) if kind in FLOAT_TYPES else result


def q8_0_rows(tensor: ReaderTensor) -> tuple[np.ndarray, np.ndarray]:
    """(int8 codes [rows, cols], float32 scale [rows]) with one scale per row."""
    cols = int(tensor.shape[0])  # GGUF lists the innermost dimension first
    blocks = np.asarray(tensor.data).reshape(-1, cols // Q8_BLOCK, 2 + Q8_BLOCK)
    block_scale = blocks[..., :2].copy().view(np.float16)[..., 0].astype(np.float32)
    codes = blocks[..., 2:].copy().view(np.int8)
    row_scale = np.abs(block_scale).max(axis=1)
    ratio = np.divide(
        block_scale,
        row_scale[:, None],
        out=np.zeros_like(block_scale),
        where=row_scale[:, None] > 0,
    )
    rescaled = np.rint(codes * ratio[..., None]).clip(-128, 127).astype(np.int8)
    exact = (ratio == 1.0)[..., None]  # blocks at the row's scale keep their codes
    out = np.where(exact, codes, rescaled)
    return out.reshape(-1, cols), row_scale


def _row_order(part: str, shape: LlamaShape) -> torch.Tensor | None:
    """Row indices that put q or k back in halves order (None for every other tensor).

    Within a head, GGUF row 2i + j holds HF row j * (head_dim / 2) + i.
    """
    heads = {"attn_q": shape.num_heads, "attn_k": shape.num_kv_heads}.get(part)
    if heads is None:
        return None
    half = shape.head_dim // 2
    return torch.arange(heads * shape.head_dim).view(heads, half, 2).transpose(1, 2).reshape(-1)


def _reorder(values: torch.Tensor, order: torch.Tensor | None) -> torch.Tensor:
    return values if order is None else values[order].contiguous()


def q4_tensors(tensors: Iterable[ReaderTensor]) -> set[str]:
    """The GGUF names of projection weights whose fused group (see _FUSED) is all Q4_0 / Q4_1:
    what `quantization: q4_0` keeps as 4-bit blocks (stored_q4_weights)."""
    return _whole_groups(tensors, Q4_TYPES)


def q4_blocks(tensor: ReaderTensor, shape: LlamaShape) -> Iterator[tuple[str, torch.Tensor]]:
    """A Q4_0 / Q4_1 weight as the engine's 4-bit layout (quant4.py), its bits as stored: the
    codes [rows, cols / 2] uint8 as `weight`, the float16 block scales [rows, cols / 32] as
    `weight_scale` and, for Q4_1, the float16 mins as `weight_min`; q and k rows in halves
    order."""
    name = GgufName.parse(tensor.name)
    target, order = name.hf(tensor.name), _row_order(name.part, shape)
    cols = int(tensor.shape[0])  # GGUF lists the innermost dimension first
    head = 4 if tensor.tensor_type == Q.Q4_1 else 2  # the float16 scale (and min) of a block
    blocks = np.asarray(tensor.data).reshape(-1, cols // Q8_BLOCK, head + Q8_BLOCK // 2)
    codes = np.ascontiguousarray(blocks[..., head:]).reshape(-1, cols // 2)
    yield target, _reorder(torch.from_numpy(codes), order)
    fields = [("weight_scale", 0), ("weight_min", 2)][: head // 2]
    for suffix, at in fields:
        values = np.ascontiguousarray(blocks[..., at : at + 2]).view(np.float16)[..., 0]
        yield f"{target.removesuffix('weight')}{suffix}", _reorder(torch.from_numpy(values), order)


def stored_q4_weights(directory: Path) -> dict[str, torch.Tensor]:
    """For a directory imported from a GGUF file (its import.json names the file), the file's
    4-bit projections (q4_tensors) as their blocks (q4_blocks), read from the file itself: the
    import holds them dequantized. Empty for any other directory, or where the file is gone
    or has changed since (the import's values then stand, quantized at load)."""
    record_path = directory / "import.json"
    if not record_path.is_file():
        return {}
    record = json.loads(record_path.read_text(encoding="utf-8"))
    source = Path(record["source"])
    try:
        stat = source.stat()
    except OSError:
        return {}
    if (stat.st_size, stat.st_mtime_ns) != (record["size"], record["mtime_ns"]):
        return {}
    gguf = GgufFile.open(source)
    shape, chosen = llama_shape(gguf), q4_tensors(gguf.tensors)
    weights: dict[str, torch.Tensor] = {}
    for tensor in gguf.tensors:
        if tensor.name in chosen:
            weights.update(q4_blocks(tensor, shape))
    return weights
