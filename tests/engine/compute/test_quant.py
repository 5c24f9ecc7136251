"""Int8 weight-only quantization: the layer's error bound, memory saved, model-level quality."""

from pathlib import Path

import torch
import torch.nn.functional as F

from inferplane.engine.compute.quant import (
    Int8Linear,
    dequantize,
    quantize_per_channel,
    weight_bytes,
)
from inferplane.engine.compute.runner import TorchModelRunner
from inferplane.engine.core.batch import StepBatch
from inferplane.engine.core.config import EngineConfig
from tests.engine.reference import chunk, fp32_runner


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
    # Layers shrink 4x against float32 (plus a scale per row); embeddings and the head stay.
    assert weight_bytes(quant.model.layers) < 0.27 * weight_bytes(dense.model.layers)
    assert weight_bytes(quant.model) < weight_bytes(dense.model)
    ids = list(range(3, 60))
    batch = StepBatch([chunk("q", ids, 0, [0, 1, 2, 3])])
    cosine = F.cosine_similarity(dense.forward_logits(batch), quant.forward_logits(batch), dim=-1)
    assert float(cosine.min()) > 0.99
