"""Prefill attention in float16 on CPU: computed in float32 (float16 SDPA is slower there),
the same values as float32 SDPA over the same inputs, rounded to float16."""

import torch
import torch.nn.functional as F

from inferplane.engine.compute.attention import ChunkSpan, _prefill_attention, build_metadata


def test_float16_prefill_is_float32_attention_rounded() -> None:
    heads, kv_heads, dim, block = 6, 2, 32, 16
    generator = torch.Generator().manual_seed(0)
    k_cache = torch.randn(4 * block, kv_heads, dim, generator=generator).half()
    v_cache = torch.randn(4 * block, kv_heads, dim, generator=generator).half()
    q = torch.randn(40, heads, dim, generator=generator).half()
    meta = build_metadata([ChunkSpan(0, 40, [2, 0, 3])], block, torch.device("cpu"))
    span = meta.prefills[0]
    got = _prefill_attention(q, k_cache, v_cache, span)
    expected = _prefill_attention(q.float(), k_cache.float(), v_cache.float(), span)
    assert got.dtype == torch.float16 and got.shape == (40, heads, dim)
    assert torch.equal(got, expected.half())
    assert F.cosine_similarity(got.float().flatten(), expected.flatten(), dim=0) > 0.9999
