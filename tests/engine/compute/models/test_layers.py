"""Layer building blocks: the packed CPU linear, RMSNorm and rotary tables."""

import pytest
import torch
import torch.nn.functional as F

from inferplane.engine.compute.loader import RopeConfig
from inferplane.engine.compute.models.layers import PackedLinear, RMSNorm, Rotary, TransposedLinear

CPU = torch.device("cpu")


@pytest.mark.skipif(not PackedLinear.supported(CPU, torch.bfloat16), reason="needs oneDNN")
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
