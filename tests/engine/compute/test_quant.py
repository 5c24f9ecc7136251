"""Int8 weight-only quantization: the layer's error bound, the path it takes by input rows,
memory saved, model-level quality."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from inferplane.engine.compute import quant
from inferplane.engine.compute.cpu_kernels import CpuKernels, cpu_kernels
from inferplane.engine.compute.models.llama import DecoderLayer
from inferplane.engine.compute.quant import (
    INT8_STREAM_ROWS,
    Int8Linear,
    dequantize,
    dequantized_linear,
    quantize_per_channel,
    weight_bytes,
)
from inferplane.engine.compute.runner import TorchModelRunner
from inferplane.engine.core.batch import StepBatch
from inferplane.engine.core.config import EngineConfig
from tests.engine.reference import chunk, fp32_runner, prefill_then_decode


def _weight(rows: int = 96, cols: int = 64) -> torch.Tensor:
    return torch.randn(rows, cols, generator=torch.Generator().manual_seed(0))


def test_rounding_error_is_at_most_half_a_step() -> None:
    weight = _weight()
    q, scale = quantize_per_channel(weight)
    assert q.dtype == torch.int8
    error = (dequantize(q, scale, torch.float32) - weight).abs()
    assert bool((error <= scale[:, None] / 2 + 1e-7).all())


def test_layer_matches_the_dequantized_product() -> None:
    weight, bias = _weight(), torch.randn(96)
    layer = Int8Linear.from_float(weight, bias)
    x = torch.randn(5, 64)
    want = F.linear(x, dequantize(layer.weight, layer.scale, torch.float32), bias)
    torch.testing.assert_close(layer(x), want, atol=1e-4, rtol=1e-4)
    assert layer(x[None]).shape == (1, 5, 96)


def test_int8_model_is_smaller_and_close(tiny_model_dir: Path) -> None:
    dense = fp32_runner(tiny_model_dir, kv_bytes=1 << 20)
    config = EngineConfig(
        model=str(tiny_model_dir), dtype="float32", quantization="int8", kv_cache_bytes=1 << 20
    )
    quant = TorchModelRunner.from_config(config)
    # Layers and the head shrink 4x against float32 (plus a scale per row); the embedding
    # lookup keeps its dense rows.
    assert weight_bytes(quant.model.layers) < 0.27 * weight_bytes(dense.model.layers)
    assert isinstance(quant.model.lm_head, Int8Linear)
    assert weight_bytes(quant.model.lm_head) < 0.27 * weight_bytes(dense.model.lm_head)
    assert quant.model.embed.dtype == torch.float32
    assert weight_bytes(quant.model) < weight_bytes(dense.model)
    ids = list(range(3, 60))
    batch = StepBatch([chunk("q", ids, 0, [0, 1, 2, 3])])
    cosine = F.cosine_similarity(dense.forward_logits(batch), quant.forward_logits(batch), dim=-1)
    assert float(cosine.min()) > 0.99


@pytest.fixture(scope="module")
def kernels() -> CpuKernels:
    built = cpu_kernels()
    if built is None:
        pytest.skip("no C compiler on this machine (or the kernels are off)")
    return built


@pytest.mark.parametrize("rows", [1, 4, INT8_STREAM_ROWS, INT8_STREAM_ROWS + 1, 64])
def test_layer_streams_few_float32_rows_and_dequantizes_for_the_rest(
    kernels: CpuKernels, rows: int
) -> None:
    weight, bias = _weight(), torch.randn(96)
    layer = Int8Linear.from_float(weight, bias, kernels=kernels)
    x = torch.randn(rows, 64)
    got = layer(x)
    streams, in_bf16 = rows <= INT8_STREAM_ROWS, layer.prefill_bf16
    if streams:
        assert torch.equal(got, kernels.linear_int8(x, layer.weight, layer.scale, bias))
    elif in_bf16:  # where oneDNN computes bfloat16 natively: the tiles and x in bfloat16
        tiles = dequantized_linear(x.to(torch.bfloat16), layer.weight, layer.scale, None)
        assert torch.equal(got, tiles.float() + bias)
    else:
        assert torch.equal(got, dequantized_linear(x, layer.weight, layer.scale, bias))
    want = F.linear(x, dequantize(layer.weight, layer.scale, torch.float32), bias)
    if (streams and kernels.int8_quantizes_input(64)) or (not streams and in_bf16):
        # rounded inputs: x to int8 per block of 32 (bound: test_linear_int8), or x and the
        # dequantized weight to bfloat16
        assert float((got - want).abs().max()) <= 0.02 * float(want.abs().max())
        assert F.cosine_similarity(got.flatten(), want.flatten(), dim=0) > 0.9999
    else:
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("rows", [1, 40])
def test_bfloat16_layer_matches_the_dequantized_product(rows: int) -> None:
    """bfloat16 activations: _weight_int8pack_mm for few rows, the dequantized weight for
    more; both within bfloat16 rounding of the float32 product."""
    layer = Int8Linear.from_float(_weight().bfloat16(), torch.randn(96).bfloat16())
    x = torch.randn(rows, 64).bfloat16()
    assert layer.bias is not None
    exact = F.linear(x.float(), dequantize(layer.weight, layer.scale.float(), torch.float32))
    exact += layer.bias.float()
    torch.testing.assert_close(layer(x).float(), exact, atol=5e-2, rtol=2e-2)


def test_dequantized_product_in_tiles_matches_one_tile(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tile of 7 rows (of 96: the last tile shorter) gives the single tile's result."""
    q, scale = quantize_per_channel(_weight())
    x, bias = torch.randn(20, 64), torch.randn(96)
    whole = dequantized_linear(x, q, scale, bias)
    monkeypatch.setattr(quant, "DEQUANT_TILE_ELEMENTS", 7 * 64)
    tiled = dequantized_linear(x, q, scale, bias)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)


def test_int8_model_with_kernels_matches_without(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """demo:tiny in float32 with int8 layers: the compiled path (decode rows) and the
    dequantized one (prefill rows) give the logits torch's own int8 ops give (to float32
    rounding, or within the rounding of each decode input row to int8 and of prefill inputs
    and tiles to bfloat16 where oneDNN computes it natively)."""
    config = EngineConfig(
        model=str(tiny_model_dir), dtype="float32", quantization="int8", kv_cache_bytes=1 << 20
    )
    fast = TorchModelRunner.from_config(config)
    monkeypatch.setenv("INFERPLANE_CPU_KERNELS", "0")
    plain = TorchModelRunner.from_config(config)
    fast_down, plain_down = (_down(runner) for runner in (fast, plain))
    assert fast_down.kernels is not None and plain_down.kernels is None
    rounds_input = fast_down.kernels.int8_quantizes_input(fast.model.config.hidden_size)
    rounds_input = rounds_input or fast_down.prefill_bf16
    for steps in prefill_then_decode():
        batch = StepBatch(steps)
        got, expected = fast.forward_logits(batch), plain.forward_logits(batch)
        if rounds_input:
            assert F.cosine_similarity(got, expected, dim=-1).min() > 0.995
            # random weights leave near ties: a rare rounded row may pick the runner-up
            agree = (got.argmax(-1) == expected.argmax(-1)).float().mean()
            assert float(agree) >= 0.95
        else:
            torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-3)


def _down(runner: TorchModelRunner) -> Int8Linear:
    """The first layer's MLP down projection (an int8 layer here)."""
    layer = runner.model.layers[0]
    assert isinstance(layer, DecoderLayer) and isinstance(layer.mlp.down, Int8Linear)
    return layer.mlp.down
