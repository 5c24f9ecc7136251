"""Completion confidence on real weights (SmolLM2-135M-Instruct): the mean token logprob and the
low-confidence share our engine reports on a request's last update (asked for logprobs or not)
equal a direct computation from transformers' logits over the same tokens; the sampler's
chosen-token logprob (one logsumexp per row, no log_softmax of the row) equals log_softmax on
those logits."""

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from inferplane.engine.compute.loader import read_eos_token_ids
from inferplane.engine.compute.runner import TorchModelRunner
from inferplane.engine.compute.sampler import chosen_logprobs
from inferplane.engine.core.confidence import LOW_CONFIDENCE_LOGPROB, Confidence, confidence_of
from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.engine import LLMEngine
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.engine.core.tokenizer import Tokenizer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
MAX_TOKENS = 12


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


Sampled = tuple[list[int], list[int], list[float], list[Confidence | None]]


@pytest.fixture(scope="module")
def sampled(smollm2_dir: Path) -> Sampled:
    """(prompt, sampled tokens, their logprobs, the engine's confidence with and without
    logprobs asked for) from our engine at temperature 0.9, seeded."""
    config = EngineConfig(
        model=str(smollm2_dir), dtype="float32", device="cpu", kv_cache_bytes=16 << 20
    )
    runner = TorchModelRunner.from_config(config)
    runner = TorchModelRunner(
        runner.model, config, torch.device("cpu"), read_eos_token_ids(smollm2_dir)
    )
    tokenizer = Tokenizer.from_dir(smollm2_dir)
    engine = LLMEngine(config, runner, tokenizer)
    prompt = tokenizer.encode_chat([{"role": "user", "content": "Name a colour."}])
    params = SamplingParams(max_tokens=MAX_TOKENS, temperature=0.9, seed=7, ignore_eos=True)
    engine.add_request("logprobs", prompt, dataclasses.replace(params, logprobs=0))
    engine.add_request("plain", prompt, params)
    tokens: dict[str, list[int]] = {"logprobs": [], "plain": []}
    logprobs: list[float] = []
    confidence: dict[str, Confidence | None] = {}
    for _ in range(200):
        for update in engine.step():
            tokens[update.request_id] += [token.token_id for token in update.new_tokens]
            if update.request_id == "logprobs":
                logprobs += [token.logprob or 0.0 for token in update.new_tokens]
            if update.finished:
                confidence[update.request_id] = update.confidence
        if not engine.has_unfinished():
            break
    assert tokens["logprobs"] == tokens["plain"]  # seeded: the same tokens either way
    return prompt, tokens["plain"], logprobs, [confidence["logprobs"], confidence["plain"]]


@pytest.fixture(scope="module")
def reference_logits(smollm2_dir: Path, sampled: Sampled) -> torch.Tensor:
    """transformers' logits (float32) at the positions that predicted each sampled token."""
    prompt, tokens, _, _ = sampled
    model: Any = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32)
    with torch.inference_mode():
        logits: torch.Tensor = model.eval()(torch.tensor([prompt + tokens])).logits[0].float()
    return logits[len(prompt) - 1 : len(prompt) - 1 + len(tokens)]


def test_confidence_equals_transformers_direct_computation(
    sampled: Sampled, reference_logits: torch.Tensor
) -> None:
    _, tokens, logprobs, reported = sampled
    assert len(tokens) == MAX_TOKENS
    direct = F.log_softmax(reference_logits, dim=-1)[torch.arange(len(tokens)), tokens].tolist()
    theirs = confidence_of(direct)
    assert theirs is not None and theirs.mean_logprob < 0
    # No token sits within the tolerance of the bar, so the shares agree exactly.
    assert all(abs(value - LOW_CONFIDENCE_LOGPROB) > 1e-2 for value in direct)
    for ours in (confidence_of(logprobs), *reported):  # the logprobs, and the engine's tally
        assert ours is not None and ours.tokens == MAX_TOKENS
        assert ours.mean_logprob == pytest.approx(theirs.mean_logprob, abs=2e-3)
        assert ours.low_confidence_share == theirs.low_confidence_share


def test_chosen_logprobs_is_log_softmax_at_the_token(
    sampled: Sampled, reference_logits: torch.Tensor
) -> None:
    _, tokens, _, _ = sampled
    ids = torch.tensor(tokens)
    expected = F.log_softmax(reference_logits, dim=-1)[torch.arange(len(tokens)), ids]
    assert chosen_logprobs(reference_logits, ids) == pytest.approx(expected.tolist(), abs=1e-4)
