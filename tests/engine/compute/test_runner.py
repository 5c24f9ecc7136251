"""The runner against transformers on the tiny model: ragged steps, chunked and cached prefill."""

import itertools
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from inferplane.engine.compute.runner import TorchModelRunner, packed_copy_fits
from inferplane.engine.core.batch import StepBatch
from inferplane.engine.core.config import EngineConfig
from tests.engine.reference import chunk, fp32_runner, hf_logits, hf_model

ATOL = 1e-4


@pytest.fixture(scope="module")
def runner(tiny_model_dir: Path) -> TorchModelRunner:
    return fp32_runner(tiny_model_dir)


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path) -> Any:
    return hf_model(tiny_model_dir)


def _prompt(seed: int, length: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(3, 4096, (length,), generator=generator).tolist()


def test_sizes_the_cache_from_bytes(runner: TorchModelRunner) -> None:
    # tiny: 4 layers x 4 kv heads x head_dim 32 x fp32 x K and V x 16 tokens = 64 KiB a block
    assert runner.num_blocks == (4 << 20) // (16 * 2 * 4 * 4 * 32 * 4)
    assert runner.max_model_len == 4096
    assert runner.eos_token_ids == (2, 0)
    assert runner.load_seconds > 0


def test_ragged_steps_match_transformers(runner: TorchModelRunner, reference: Any) -> None:
    """Step 1: a chunk of A's prompt and the whole of B and C. Step 2: the rest of A, one
    decode each for B and C. Step 3: D reuses A's first two blocks (start 32), A decodes."""
    a, b, c = _prompt(1, 40), _prompt(2, 10), _prompt(3, 17)
    d = a[:32] + _prompt(4, 13)
    blocks = {"a": [0, 1, 2, 3], "b": [4], "c": [5, 6], "d": [0, 1, 7]}
    b_next, c_next, a_next = 11, 12, 13
    steps = [
        [chunk("a", a[:24], 0, blocks["a"], sample=False), chunk("b", b, 0, blocks["b"]),
         chunk("c", c, 0, blocks["c"])],
        [chunk("b", [b_next], 10, blocks["b"]), chunk("a", a[24:], 24, blocks["a"]),
         chunk("c", [c_next], 17, blocks["c"])],
        [chunk("d", d[32:], 32, blocks["d"]), chunk("a", [a_next], 40, blocks["a"])],
    ]  # fmt: skip
    full = {"a": [*a, a_next], "b": [*b, b_next], "c": [*c, c_next], "d": d}
    for step in steps:
        got = runner.forward_logits(StepBatch(step))
        rows = itertools.accumulate((len(ch.token_ids) for ch in step), initial=0)
        for ch, start_row in zip(step, rows, strict=False):
            want = hf_logits(reference, full[ch.request_id][: ch.end_position])
            rows_got = got[start_row : start_row + len(ch.token_ids)]
            torch.testing.assert_close(rows_got, want[ch.start_position :], atol=ATOL, rtol=0)


def test_greedy_decode_matches_transformers(runner: TorchModelRunner, reference: Any) -> None:
    prompt = _prompt(5, 20)
    with torch.no_grad():
        want = reference.generate(
            torch.tensor([prompt]), max_new_tokens=12, do_sample=False, pad_token_id=0
        )[0, len(prompt) :].tolist()
    tokens, blocks = list(prompt), [10, 11]
    (first,) = runner.execute(StepBatch([chunk("g", tokens, 0, blocks)]))
    tokens.append(first.token_id)
    while len(tokens) < len(prompt) + 12:
        (nxt,) = runner.execute(StepBatch([chunk("g", tokens[-1:], len(tokens) - 1, blocks)]))
        tokens.append(nxt.token_id)
    assert tokens[len(prompt) :] == want


def test_only_sampling_chunks_produce_tokens(runner: TorchModelRunner) -> None:
    step = [chunk("x", _prompt(6, 5), 0, [20], sample=False), chunk("y", _prompt(7, 3), 0, [21])]
    out = runner.execute(StepBatch(step))
    assert [token.request_id for token in out] == ["y"]


def test_sleep_frees_the_cache_and_wake_restores_it(tiny_model_dir: Path) -> None:
    runner = fp32_runner(tiny_model_dir, kv_bytes=1 << 20)
    step = StepBatch([chunk("s", _prompt(8, 4), 0, [0])])
    before = runner.execute(step)
    runner.sleep()
    with pytest.raises(RuntimeError, match="asleep"):
        runner.execute(step)
    runner.wake()
    assert runner.execute(step) == before


def test_rejects_a_cache_too_small_for_one_block(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="kv_cache_bytes"):
        TorchModelRunner.from_config(EngineConfig(model=str(tiny_model_dir), kv_cache_bytes=100))


def test_rejects_max_model_len_beyond_the_model(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="max_position_embeddings"):
        TorchModelRunner.from_config(EngineConfig(model=str(tiny_model_dir), max_model_len=10**6))


def test_bfloat16_agrees_with_transformers_in_bfloat16(tiny_model_dir: Path) -> None:
    config = EngineConfig(model=str(tiny_model_dir), dtype="bfloat16", kv_cache_bytes=1 << 20)
    runner = TorchModelRunner.from_config(config)
    reference: Any = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    reference.eval()
    prompt = _prompt(9, 24)
    got = runner.forward_logits(StepBatch([chunk("h", prompt, 0, [0, 1])]))
    want = hf_logits(reference, prompt)
    cosine = torch.nn.functional.cosine_similarity(got, want, dim=-1)
    assert float(cosine.min()) > 0.999
    # bf16 logits tie often; where the top token differs it must be a near-tie in the reference.
    chosen = want.gather(-1, got.argmax(-1, keepdim=True))[:, 0]
    assert float((want.max(-1).values - chosen).max()) < 0.1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bfloat16_follows_cpu_float32(tiny_model_dir: Path, runner: TorchModelRunner) -> None:
    config = EngineConfig(
        model=str(tiny_model_dir), dtype="bfloat16", device="cuda", kv_cache_bytes=1 << 20
    )
    cuda = TorchModelRunner.from_config(config)
    batch = StepBatch([chunk("g", _prompt(10, 30), 0, [0, 1])])
    cosine = torch.nn.functional.cosine_similarity(
        cuda.forward_logits(batch).cpu(), runner.forward_logits(batch), dim=-1
    )
    assert float(cosine.min()) > 0.99
    cuda.sleep()
    cuda.wake()
    assert cuda.execute(batch)[0].token_id == runner.execute(batch)[0].token_id


def test_a_packed_copy_is_held_only_where_half_the_memory_left_takes_it() -> None:
    gib = 1 << 30
    assert packed_copy_fits(2 * gib, available=8 * gib)
    assert not packed_copy_fits(16 * gib, available=24 * gib)  # an 8B model in bfloat16
    assert packed_copy_fits(1)  # this host's own reading: one byte fits
