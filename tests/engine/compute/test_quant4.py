"""4-bit weight-only quantization (quant4.py): llama.cpp's Q4_0 bits, and the layer's decode
(compiled) and prefill (dequantized tiles) paths against the float product."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gguf import GGMLQuantizationType
from gguf.quants import quantize

from inferplane.engine.compute.cpu_kernels.build import DISABLE_ENV
from inferplane.engine.compute.cpu_kernels.ops_q4 import Q4Kernels, q4_kernels
from inferplane.engine.compute.models.llama import DecoderLayer
from inferplane.engine.compute.quant import Int8Linear, weight_bytes
from inferplane.engine.compute.quant4 import Q4Linear, dequantize_q4, quantize_q4_0
from inferplane.engine.compute.runner import TorchModelRunner
from inferplane.engine.core.batch import StepBatch
from inferplane.engine.core.config import EngineConfig
from tests.engine.reference import fp32_runner, prefill_then_decode


@pytest.fixture(scope="module")
def q4() -> Q4Kernels:
    built = q4_kernels()
    if built is None:
        pytest.skip("no C compiler on this machine")
    return built


def _gguf_q4_0(weight: torch.Tensor) -> np.ndarray:
    """gguf's reference Q4_0 blocks (2 bytes of float16 scale, then 16 bytes of codes)."""
    n, k = weight.shape
    return quantize(weight.numpy(), GGMLQuantizationType.Q4_0).reshape(n, k // 32, 18)


def test_quantize_q4_0_makes_the_reference_bits() -> None:
    """The same scales and codes as the reference quantizer (llama.cpp's rounding, which the
    gguf package mirrors), including an all-zero block, ties for the largest magnitude, and
    values exactly between two codes."""
    weight = torch.randn(64, 256, generator=torch.Generator().manual_seed(0))
    weight[0, :32] = 0
    weight[1, :32] = torch.tensor([1.0, -1.0] * 16)
    weight[2, :32] = torch.arange(32) / 4 - 4
    reference = _gguf_q4_0(weight)
    ours = quantize_q4_0(weight)
    scale = reference[..., :2].copy().view(np.float16)[..., 0]
    assert np.array_equal(ours.scale.numpy().view(np.uint16), scale.view(np.uint16))
    assert np.array_equal(ours.codes.numpy(), reference[..., 2:].reshape(64, 128))
    assert ours.min is None


def test_quantize_q4_0_refuses_a_width_of_partial_blocks() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        quantize_q4_0(torch.randn(4, 40))


def test_q4_0_error_is_within_a_step() -> None:
    """Codes reach -8 steps on the largest value's side and only 7 on the other: a value
    there moves by up to one step |d|, every other by at most half (plus the float16 scale's
    rounding, under 2^-10 of the block's largest value)."""
    weight = torch.randn(32, 128, generator=torch.Generator().manual_seed(1))
    w = quantize_q4_0(weight)
    step = w.scale.float().abs().repeat_interleave(32, dim=1)
    error = (dequantize_q4(w) - weight).abs()
    largest = weight.abs().reshape(32, 4, 32).amax(-1).repeat_interleave(32, dim=1)
    assert bool((error <= step + largest * 2**-10).all())
    inside = weight.abs() <= largest * 7 / 8
    assert bool((error[inside] <= (step / 2 + largest * 2**-10)[inside]).all())


def test_q4_linear_holds_the_blocks_only() -> None:
    """4.5 bits a weight (codes and float16 scales) and the bias: no float copy."""
    layer = Q4Linear.from_float(torch.randn(96, 576), torch.zeros(96), kernels=None)
    assert weight_bytes(layer) == 96 * 576 // 2 + 96 * 18 * 2 + 96 * 4


@pytest.mark.parametrize("rows", [1, 4, 16, 17, 40])
def test_q4_linear_decode_and_prefill_agree_with_the_float_product(
    q4: Q4Kernels, rows: int
) -> None:
    """Up to 16 rows the compiled kernel (the input rounded per block), past it dequantized
    tiles and F.linear (exact up to summation order, or in bfloat16 where oneDNN computes
    it natively: within bfloat16's rounding); a bfloat16 input too."""
    weight = torch.randn(200, 320, generator=torch.Generator().manual_seed(rows))
    bias = torch.randn(200)
    layer = Q4Linear.from_float(weight, bias, kernels=q4)
    plain = Q4Linear.from_float(weight, bias, kernels=None)
    x = torch.randn(rows, 320, generator=torch.Generator().manual_seed(7))
    expected = F.linear(x, dequantize_q4(layer.blocks), bias)
    torch.testing.assert_close(plain(x), expected, rtol=1e-5, atol=1e-4)
    got = layer(x)
    if rows > 16 and not layer.prefill_bf16:
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    if rows > 16 and layer.prefill_bf16:
        # x and w rounded to bfloat16 (2^-9 relative each), the output too
        scale = x.abs() @ dequantize_q4(layer.blocks).abs().T
        assert bool(((got - expected).abs() <= scale * 2**-7 + expected.abs() * 2**-8).all())
    assert F.cosine_similarity(got.flatten(), expected.flatten(), dim=0) > 0.9999
    half = layer(x.to(torch.bfloat16)[None])  # a leading batch dimension, bfloat16 in and out
    assert half.dtype == torch.bfloat16 and half.shape == (1, rows, 200)


def test_q4_linear_tiles_a_large_weight(q4: Q4Kernels, monkeypatch: pytest.MonkeyPatch) -> None:
    """Prefill dequantizes a tile of rows at a time: the same result as one tile."""
    weight = torch.randn(100, 64, generator=torch.Generator().manual_seed(3))
    layer = Q4Linear.from_float(weight, None, kernels=q4)
    x = torch.randn(20, 64)
    whole = layer(x)
    monkeypatch.setattr("inferplane.engine.compute.quant.DEQUANT_TILE_ELEMENTS", 64 * 7)
    torch.testing.assert_close(layer(x), whole)


def test_q4_0_model_is_smaller_and_its_kernels_agree(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """demo:tiny with q4_0: its projections as Q4_0 blocks (down_proj, 688 columns wide, no
    multiple of 32: int8), the head int8; about a seventh of float32's layer bytes. The
    compiled decode path gives the logits the kernels-off model (every product through the
    dequantized weight) gives, to the input's rounding; both stay near float32's (demo:tiny's
    random weights make 4-bit error add up across its layers more than a trained model's)."""
    dense = fp32_runner(tiny_model_dir, kv_bytes=1 << 20)
    config = EngineConfig(
        model=str(tiny_model_dir), dtype="float32", quantization="q4_0", kv_cache_bytes=1 << 20
    )
    quant = TorchModelRunner.from_config(config)
    layer = quant.model.layers[0]
    assert isinstance(layer, DecoderLayer)
    assert isinstance(layer.attn.qkv, Q4Linear) and isinstance(layer.mlp.gate_up, Q4Linear)
    assert isinstance(layer.mlp.down, Int8Linear) and isinstance(quant.model.lm_head, Int8Linear)
    assert layer.attn.qkv.kernels is not None  # the compiled decode path on this CPU
    dense_layer = dense.model.layers[0]
    assert isinstance(dense_layer, DecoderLayer)
    assert weight_bytes(layer.attn) < 0.15 * weight_bytes(dense_layer.attn)
    monkeypatch.setenv(DISABLE_ENV, "0")
    plain = TorchModelRunner.from_config(config)
    for step in prefill_then_decode():
        batch = StepBatch(step)
        got, exact = quant.forward_logits(batch), plain.forward_logits(batch)
        assert float(F.cosine_similarity(got, exact, dim=-1).min()) > 0.99
        want = dense.forward_logits(batch)
        assert float(F.cosine_similarity(got, want, dim=-1).mean()) > 0.7


def test_q4_0_decode_runs_in_the_compiled_stack(tiny_model_dir: Path) -> None:
    """The 4-bit layers (and demo:tiny's int8 down_proj beside them) take the compiled layer
    stack for decode rows, with the logits the layers give one by one (but for SwiGLU's exp)."""
    config = EngineConfig(
        model=str(tiny_model_dir), dtype="float32", quantization="q4_0", kv_cache_bytes=1 << 20
    )
    runner = TorchModelRunner.from_config(config)
    stack = runner.model.stack
    assert stack is not None
    prefill, decode = (StepBatch(step) for step in prefill_then_decode())
    runner.forward_logits(prefill)
    stacked = runner.forward_logits(decode)
    runner.model.stack = None
    torch.testing.assert_close(runner.forward_logits(decode), stacked, rtol=1e-4, atol=1e-4)
