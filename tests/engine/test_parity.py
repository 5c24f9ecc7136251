"""The engine's correctness bar: greedy output is token-identical to transformers'
`generate(do_sample=False)` on the same float32 weights, however the engine batches, chunks,
caches or preempts the work."""

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from inferplane.engine.compute.runner import TorchModelRunner
from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.engine import LLMEngine
from inferplane.engine.core.outputs import RequestOutput
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.engine.core.tokenizer import Tokenizer

pytestmark = pytest.mark.timeout(120)

TEXTS = [
    "Hello",
    "The quick brown fox jumps over the lazy dog.",
    "Café, naïve, über. 日本語のテキスト。 Emoji: 🚀 🎉",
    "An inference platform turns a trained model into answers. " * 6,
]
KV_BYTES_PER_BLOCK = 16 * 2 * 4 * 4 * 32 * 4  # block x (K, V) x layers x kv heads x dim x fp32


@dataclass
class Finished:
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    final: RequestOutput | None = None


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """The tiny model gains nothing from threads, and on a busy machine spinning threads cost
    several times the work itself."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Tokenizer:
    return Tokenizer.from_dir(tiny_model_dir)


@pytest.fixture(scope="module")
def hf_model(tiny_model_dir: Path) -> Any:
    model: Any = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    return model.eval()


def _engine(directory: Path, tokenizer: Tokenizer, **overrides: Any) -> LLMEngine:
    config = EngineConfig(model=str(directory), dtype="float32", device="cpu", **overrides)
    return LLMEngine(config, TorchModelRunner.from_config(config), tokenizer)


def _greedy(max_tokens: int) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)


@torch.inference_mode()
def _reference(model: Any, prompt: Sequence[int], max_tokens: int) -> list[int]:
    ids = torch.tensor([list(prompt)])
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        max_new_tokens=max_tokens,
        min_new_tokens=max_tokens,  # like ignore_eos: compare full-length outputs
        pad_token_id=0,
    )
    return [int(token) for token in out[0, ids.shape[1] :]]


def _run(engine: LLMEngine, requests: dict[str, tuple[list[int], int]]) -> dict[str, Finished]:
    """Submit everything at once, step until done (bounded), collect per request."""
    results = {rid: Finished() for rid in requests}
    for rid, (prompt, max_tokens) in requests.items():
        engine.add_request(rid, prompt, _greedy(max_tokens))
    for _ in range(10_000):
        if not engine.has_unfinished():
            break
        for update in engine.step():
            result = results[update.request_id]
            result.token_ids.extend(token.token_id for token in update.new_tokens)
            result.text += update.text
            if update.finished:
                result.final = update
    assert not engine.has_unfinished(), "the engine did not finish in 10k steps"
    return results


def _assert_matches(
    model: Any, tokenizer: Tokenizer, requests: dict[str, tuple[list[int], int]], got: Any
) -> None:
    for rid, (prompt, max_tokens) in requests.items():
        result = got[rid]
        assert result.token_ids == _reference(model, prompt, max_tokens), rid
        assert result.final is not None and result.final.finish_reason == "length"
        assert result.final.completion_tokens == max_tokens
        assert result.text == tokenizer.decode(result.token_ids)


def test_prompts_one_at_a_time_match_transformers(
    tiny_model_dir: Path, tokenizer: Tokenizer, hf_model: Any
) -> None:
    engine = _engine(tiny_model_dir, tokenizer)
    for index, text in enumerate(TEXTS):
        requests = {f"alone{index}": (tokenizer.encode(text), 16)}
        _assert_matches(hf_model, tokenizer, requests, _run(engine, requests))


def test_mixed_batch_with_chunked_prefill(
    tiny_model_dir: Path, tokenizer: Tokenizer, hf_model: Any
) -> None:
    # A 32-token step budget splits the long prompts across steps beside running decodes.
    engine = _engine(tiny_model_dir, tokenizer, max_num_batched_tokens=32)
    requests = {f"r{i}": (tokenizer.encode(text), 8 + 6 * i) for i, text in enumerate(TEXTS)}
    rng = random.Random(7)
    requests["random"] = ([rng.randrange(3, 4096) for _ in range(77)], 30)
    _assert_matches(hf_model, tokenizer, requests, _run(engine, requests))


def test_prefix_cache_hit_matches(
    tiny_model_dir: Path, tokenizer: Tokenizer, hf_model: Any
) -> None:
    engine = _engine(tiny_model_dir, tokenizer)
    prefix = tokenizer.encode(TEXTS[3])  # > 4 blocks of 16
    first = {"first": ([*prefix, *tokenizer.encode(" first question")], 16)}
    second = {"second": ([*prefix, *tokenizer.encode(" another one")], 16)}
    got_first = _run(engine, first)
    got_second = _run(engine, second)
    assert got_first["first"].final is not None and got_second["second"].final is not None
    assert got_first["first"].final.cached_prompt_tokens == 0
    assert got_second["second"].final.cached_prompt_tokens >= 16 * (len(prefix) // 16) - 16
    assert engine.stats().prefix_cache_hits > 0
    _assert_matches(hf_model, tokenizer, first, got_first)
    _assert_matches(hf_model, tokenizer, second, got_second)


def test_preemption_under_a_tiny_kv_budget(
    tiny_model_dir: Path, tokenizer: Tokenizer, hf_model: Any
) -> None:
    # 10 blocks of 16 tokens for 4 requests that each grow to ~5 blocks: some must be
    # preempted, recomputed later, and still produce the same tokens.
    engine = _engine(tiny_model_dir, tokenizer, kv_cache_bytes=10 * KV_BYTES_PER_BLOCK)
    assert engine.runner.num_blocks == 10
    rng = random.Random(11)
    requests = {
        f"p{i}": ([rng.randrange(3, 4096) for _ in range(20 + 5 * i)], 48) for i in range(4)
    }
    got = _run(engine, requests)
    assert engine.stats().num_preemptions > 0
    _assert_matches(hf_model, tokenizer, requests, got)
