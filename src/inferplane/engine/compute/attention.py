"""Attention over the paged KV cache for one ragged step, in plain torch.

The cache of one layer is a tensor [num_blocks * block_size, kv_heads, head_dim] (blocks laid
end to end), so a token's slot is block * block_size + offset. Each step's metadata is built
once and reused by every layer: the slots to write, and for each sequence the slots of its
whole context to read. Prefill chunks attend one sequence at a time through SDPA with a causal
mask that accounts for the tokens already cached; single-token (decode) chunks attend
together, padded to the longest context with an additive mask, in two batched matmuls per
layer (for one query row, the CPU SDPA kernels are several times slower than that).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from inferplane.engine.compute.cpu_kernels import CpuKernels


@dataclass(frozen=True)
class ChunkSpan:
    """What attention needs of one chunk: where it sits in the step and in its sequence."""

    start_position: int
    num_tokens: int
    block_table: Sequence[int]


@dataclass(frozen=True)
class PrefillSpan:
    """A multi-token chunk: rows [row_start, row_start + num_rows) of the step."""

    row_start: int
    num_rows: int
    context_slots: torch.Tensor  # [context_len] slots of positions 0 .. end
    mask: torch.Tensor | None  # [num_rows, context_len] bool; None: plain causal from 0


@dataclass(frozen=True)
class DecodeGroup:
    """All single-token chunks, attended together."""

    rows: torch.Tensor  # [B] rows of the step
    context_slots: torch.Tensor  # [B, S] slots, padded with slot 0
    bias: torch.Tensor | None  # [B, 1, 1, S] float32, -inf on padding; None: no padding
    all_rows: bool  # the step is decode-only: rows == arange(T)
    lengths: torch.Tensor  # [B] int64 context lengths (on the CPU, for the compiled kernel)


@dataclass(frozen=True)
class AttentionMetadata:
    slot_mapping: torch.Tensor  # [T] where each new token's K and V go
    prefills: tuple[PrefillSpan, ...]
    decode: DecodeGroup | None


def build_metadata(
    spans: Sequence[ChunkSpan], block_size: int, device: torch.device
) -> AttentionMetadata:
    """Turn a step's chunks into index tensors (built on CPU, moved to `device` once)."""
    slot_rows: list[torch.Tensor] = []
    prefills: list[PrefillSpan] = []
    decodes: list[tuple[int, torch.Tensor]] = []
    row = 0
    for span in spans:
        end = span.start_position + span.num_tokens
        slots = _context_slots(span.block_table, end, block_size)
        slot_rows.append(slots[span.start_position :])
        if span.num_tokens == 1:
            decodes.append((row, slots))
        else:
            prefills.append(_prefill_span(row, span, slots, device))
        row += span.num_tokens
    slot_mapping = torch.cat(slot_rows).to(device)
    return AttentionMetadata(slot_mapping, tuple(prefills), _decode_group(decodes, row, device))


def _context_slots(block_table: Sequence[int], length: int, block_size: int) -> torch.Tensor:
    num_blocks = -(-length // block_size)
    if len(block_table) < num_blocks:
        raise ValueError(f"block table covers {len(block_table)} blocks, {num_blocks} needed")
    blocks = torch.tensor(list(block_table[:num_blocks]), dtype=torch.long)
    offsets = torch.arange(block_size, dtype=torch.long)
    return (blocks[:, None] * block_size + offsets[None, :]).reshape(-1)[:length]


def _prefill_span(
    row: int, span: ChunkSpan, slots: torch.Tensor, device: torch.device
) -> PrefillSpan:
    mask = None
    if span.start_position > 0:
        query_pos = torch.arange(span.num_tokens) + span.start_position
        mask = (torch.arange(len(slots))[None, :] <= query_pos[:, None]).to(device)
    return PrefillSpan(row, span.num_tokens, slots.to(device), mask)


def _decode_group(
    decodes: list[tuple[int, torch.Tensor]], num_rows: int, device: torch.device
) -> DecodeGroup | None:
    if not decodes:
        return None
    longest = max(len(slots) for _, slots in decodes)
    padded = torch.zeros(len(decodes), longest, dtype=torch.long)
    lengths = torch.tensor([len(slots) for _, slots in decodes])
    for i, (_, slots) in enumerate(decodes):
        padded[i, : len(slots)] = slots
    bias = None
    if bool((lengths != longest).any()):
        padding = torch.arange(longest)[None, :] >= lengths[:, None]
        bias = torch.zeros(padding.shape).masked_fill_(padding, float("-inf"))
        bias = bias[:, None, None, :].to(device)
    rows = torch.tensor([r for r, _ in decodes], dtype=torch.long)
    all_rows = len(decodes) == num_rows
    return DecodeGroup(rows.to(device), padded.to(device), bias, all_rows, lengths)


def paged_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    meta: AttentionMetadata,
    kernels: CpuKernels | None = None,
) -> torch.Tensor:
    """q [T, heads, head_dim] against the cached context -> [T, heads * head_dim].

    With `kernels`, decode rows go through the compiled kernel (one call instead of a dozen
    ops per layer); prefill stays on SDPA.
    """
    num_rows, heads, head_dim = q.shape
    decode = meta.decode
    if decode is not None and decode.all_rows:
        out = _decode(q, k_cache, v_cache, decode, kernels)
        return out.reshape(num_rows, heads * head_dim)
    out = torch.empty_like(q)
    for span in meta.prefills:
        rows = slice(span.row_start, span.row_start + span.num_rows)
        out[rows] = _prefill_attention(q[rows], k_cache, v_cache, span)
    if decode is not None:
        out[decode.rows] = _decode(q[decode.rows], k_cache, v_cache, decode, kernels)
    return out.reshape(num_rows, heads * head_dim)


def _decode(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    group: DecodeGroup,
    kernels: CpuKernels | None,
) -> torch.Tensor:
    if kernels is None:
        return _decode_attention(q, k_cache, v_cache, group)
    scale = q.shape[-1] ** -0.5
    return kernels.decode_attention(
        q.contiguous(), k_cache, v_cache, group.context_slots, group.lengths, scale
    )


def _prefill_attention(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, span: PrefillSpan
) -> torch.Tensor:
    # 4-D inputs: the CPU kernels run about twice as fast as on the same 3-D views.
    k = k_cache[span.context_slots].transpose(0, 1)[None]  # [1, kv_heads, ctx, head_dim]
    v = v_cache[span.context_slots].transpose(0, 1)[None]
    q4 = q.transpose(0, 1)[None]
    if q.dtype == torch.float16 and q.device.type == "cpu":
        # float16 SDPA on a CPU is 2.5-3x slower than float32's on the same values (SmolLM2,
        # 512 tokens, one thread: 29 against 11 ms a layer, the conversions included)
        q4, k, v = q4.float(), k.float(), v.float()
    out = F.scaled_dot_product_attention(
        q4, k, v, attn_mask=span.mask, is_causal=span.mask is None, enable_gqa=True
    )
    return out[0].transpose(0, 1).to(q.dtype)


def _decode_attention(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, group: DecodeGroup
) -> torch.Tensor:
    """q [B, heads, head_dim]; query head h reads KV head h // (heads / kv_heads)."""
    batch, heads, head_dim = q.shape
    k = k_cache[group.context_slots]  # [B, S, kv_heads, head_dim]
    v = v_cache[group.context_slots]
    kv_heads = k.shape[2]
    grouped = q.reshape(batch, kv_heads, heads // kv_heads, head_dim)
    scores = torch.matmul(grouped, k.permute(0, 2, 3, 1)).float().mul_(head_dim**-0.5)
    if group.bias is not None:
        scores.add_(group.bias)
    probs = torch.softmax(scores, dim=-1).to(q.dtype)  # [B, kv_heads, group, S]
    return torch.matmul(probs, v.transpose(1, 2)).reshape(batch, heads, head_dim)
