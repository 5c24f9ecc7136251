"""Layer building blocks: the packed CPU linear (and the model without it on a host that
cannot pack), RMSNorm and rotary tables."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from inferplane.engine.compute.cpu_features import OVERRIDE_ENV
from inferplane.engine.compute.cpu_kernels.build import DISABLE_ENV
from inferplane.engine.compute.loader import RopeConfig
from inferplane.engine.compute.models.layers import (
    Linear,
    PackedLinear,
    RMSNorm,
    Rotary,
    TransposedLinear,
)
from inferplane.engine.compute.runner import TorchModelRunner
from inferplane.engine.core.batch import StepBatch
from inferplane.engine.core.config import EngineConfig
from tests.engine.reference import chunk

CPU = torch.device("cpu")
CANNOT_PACK = "oneDNN packs bfloat16 only with AVX-512 (BW, VL, DQ) or AVX-NE-CONVERT"


@pytest.mark.skipif(not PackedLinear.supported(CPU, torch.bfloat16), reason=CANNOT_PACK)
@pytest.mark.parametrize("rows", [1, 5])
def test_packed_linear_equals_plain_linear(rows: int) -> None:
    weight = torch.randn(48, 32).bfloat16()
    bias = torch.randn(48).bfloat16()
    x = torch.randn(rows, 32).bfloat16()
    layer = PackedLinear(weight, bias)
    torch.testing.assert_close(layer(x), F.linear(x, weight, bias), atol=0, rtol=0)


def test_transposed_linear_matches_plain_linear() -> None:
    weight, bias, x = torch.randn(48, 32), torch.randn(48), torch.randn(3, 7, 32)
    layer = TransposedLinear(weight, bias)
    torch.testing.assert_close(layer(x), F.linear(x, weight, bias), atol=1e-5, rtol=1e-5)


def test_packing_is_only_for_bfloat16_on_cpu() -> None:
    assert not PackedLinear.supported(CPU, torch.float32)
    assert not PackedLinear.supported(torch.device("cuda"), torch.bfloat16)


def test_an_avx2_host_does_not_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OVERRIDE_ENV, "x86-64-v3")
    assert not PackedLinear.supported(CPU, torch.bfloat16)


def _bf16_logits(directory: Path) -> tuple[TorchModelRunner, list[torch.Tensor]]:
    """A prefill step then a decode step of the tiny model in bfloat16 (kernels off: only the
    linear layout differs between the runs compared)."""
    config = EngineConfig(model=str(directory), dtype="bfloat16", kv_cache_bytes=4 << 20)
    runner = TorchModelRunner.from_config(config)
    prompt = list(range(3, 30))
    steps = [[chunk("a", prompt, 0, [0, 1])], [chunk("a", [7], len(prompt), [0, 1])]]
    return runner, [runner.forward_logits(StepBatch(step)) for step in steps]


@pytest.mark.skipif(not PackedLinear.supported(CPU, torch.bfloat16), reason=CANNOT_PACK)
def test_a_host_that_cannot_pack_loads_plain_linears_that_agree(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DISABLE_ENV, "0")
    packed, expected = _bf16_logits(tiny_model_dir)
    assert any(isinstance(m, PackedLinear) for m in packed.model.modules())
    monkeypatch.setenv(OVERRIDE_ENV, "x86-64-v3")
    plain, got = _bf16_logits(tiny_model_dir)
    linears = [m for m in plain.model.modules() if isinstance(m, (Linear, PackedLinear))]
    assert linears and all(type(m) is Linear for m in linears)
    for step_got, step_expected in zip(got, expected, strict=True):
        assert F.cosine_similarity(step_got, step_expected, dim=-1).min() > 0.9999
        chosen = step_expected.gather(-1, step_got.argmax(-1, keepdim=True))[:, 0]
        assert float((step_expected.max(-1).values - chosen).max()) < 0.1  # ties may swap


def test_rms_norm_has_unit_mean_square() -> None:
    x = torch.randn(3, 64) * 5
    out = RMSNorm(torch.ones(64), 1e-6)(x)
    torch.testing.assert_close(out.pow(2).mean(-1), torch.ones(3), atol=1e-4, rtol=0)


def test_rotation_keeps_norms_and_is_identity_at_zero() -> None:
    rotary = Rotary(RopeConfig(), head_dim=16, max_len=32, dtype=torch.float32)
    x = torch.randn(4, 2, 16)
    cos, sin = rotary.tables(torch.tensor([0, 3, 7, 31]))
    out = rotary.rotate(x, cos, sin)
    torch.testing.assert_close(out[0], x[0])
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))
