"""Weights and the KV cache in huge-page mappings (huge_pages.py): the values, ties and skipped
modules as they were, and a runner whose compiled stack follows its moved weights."""

from pathlib import Path

import pytest
import torch
from torch import nn

from inferplane.engine.compute.huge_pages import (
    DISABLE_ENV,
    MIN_BYTES,
    empty_in_huge_pages,
    huge_pages_available,
    into_huge_pages,
    thp_mode,
)
from inferplane.engine.compute.runner import TorchModelRunner
from inferplane.engine.core.batch import StepBatch
from inferplane.engine.core.config import DTypeName, EngineConfig
from tests.engine.reference import prefill_then_decode

needs_thp = pytest.mark.skipif(
    not huge_pages_available(), reason="transparent huge pages are off on this host"
)


class _Holder(nn.Module):
    def __init__(self, big: torch.Tensor, small: torch.Tensor) -> None:
        super().__init__()
        self.big: torch.Tensor
        self.small: torch.Tensor
        self.register_buffer("big", big)
        self.register_buffer("small", small)


class _Skipped(_Holder):
    pass


def test_thp_mode_reads_the_bracketed_word(tmp_path: Path) -> None:
    setting = tmp_path / "enabled"
    setting.write_text("always [madvise] never\n")
    assert thp_mode(setting) == "madvise"
    assert thp_mode(tmp_path / "missing") == ""


@needs_thp
def test_large_buffers_move_with_their_values_and_ties() -> None:
    rows = MIN_BYTES // (4 * 64) + 1
    big, small = torch.randn(rows, 64), torch.randn(8)
    first, second = _Holder(big, small), _Holder(big, small.clone())
    skipped = _Skipped(torch.randn(rows, 64), small)
    model = nn.ModuleList([first, second, skipped])
    before = [t.clone() for t in (big, skipped.big)]
    moved = into_huge_pages(model, skip=(_Skipped,))
    assert moved >= big.numel() * 4
    assert first.big is second.big  # a tied buffer stays tied
    assert first.big.data_ptr() != big.data_ptr() and torch.equal(first.big, before[0])
    assert first.small is small  # under MIN_BYTES: where it was
    assert skipped.big.data_ptr() != first.big.data_ptr() and torch.equal(skipped.big, before[1])
    assert first.big.data_ptr() % 64 == 0


@needs_thp
def test_an_empty_huge_page_tensor_reads_as_zeros() -> None:
    cache = empty_in_huge_pages((4, 2, 1024, 64), torch.bfloat16)
    assert cache is not None and cache.shape == (4, 2, 1024, 64)
    assert cache.dtype == torch.bfloat16 and not cache.any()
    cache[1, 0, 3] = 1.0
    assert cache.sum().item() == 64
    assert empty_in_huge_pages((4,), torch.float32) is None  # too small to be worth it


@needs_thp
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_runner_streams_moved_weights_through_a_rebuilt_stack(
    tiny_model_dir: Path, dtype: DTypeName
) -> None:
    """demo:tiny's products and embedding cross MIN_BYTES: the stack must read them where
    they are now, and give the same logits as the layers one by one."""
    config = EngineConfig(model=str(tiny_model_dir), dtype=dtype, kv_cache_bytes=4 << 20)
    runner = TorchModelRunner.from_config(config)
    assert runner.model.stack is not None
    prefill, decode = prefill_then_decode()
    runner.forward_logits(StepBatch(prefill))
    stacked = runner.forward_logits(StepBatch(decode))
    layers = TorchModelRunner.from_config(config)
    layers.model.stack = None
    layers.forward_logits(StepBatch(prefill))
    expected = layers.forward_logits(StepBatch(decode))
    torch.testing.assert_close(stacked, expected, atol=0.1, rtol=0.1)
    assert torch.equal(stacked.argmax(-1), expected.argmax(-1))


def test_switched_off_nothing_moves_and_the_runner_gives_the_same_logits(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path a host without THP takes (INFERPLANE_HUGE_PAGES=0 here): weights and the KV
    cache stay where torch put them, and the logits are those of a runner that moved them."""
    config = EngineConfig(model=str(tiny_model_dir), dtype="float32", kv_cache_bytes=4 << 20)
    moved = TorchModelRunner.from_config(config)
    monkeypatch.setenv(DISABLE_ENV, "0")
    assert not huge_pages_available()
    assert into_huge_pages(nn.Linear(1024, 1024)) == 0
    assert empty_in_huge_pages((4, 2, 1024, 64), torch.float32) is None
    staying = TorchModelRunner.from_config(config)
    prefill, decode = prefill_then_decode()
    for runner in (moved, staying):
        runner.forward_logits(StepBatch(prefill))
    torch.testing.assert_close(
        staying.forward_logits(StepBatch(decode)), moved.forward_logits(StepBatch(decode))
    )
