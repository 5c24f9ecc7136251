"""A canary serving a deliberately degraded model is rolled back on confidence alone.

Baseline: SmolLM2-135M-Instruct. Canary: the same weights with Gaussian noise on the last
decoder layer's matrices (a perturbed copy, as a broken conversion or a bad fine-tune would
give). Both answer the same prompts through our engine, sampled at temperature 1 as chat
traffic is (greedy answers hide the damage: a damaged model's argmax tokens stay sure of
themselves, and heavier noise made SmolLM2 collapse into confident repetition). Their
confidence (the mean token logprob each answer reports) goes through the gateway's quality
book into the rollout's windows, with the same errors and latency on both sides, and the
rollout's confidence gate rolls the canary back with the reason.
"""

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from inferplane.control import gate_window
from inferplane.control.rollout import Gates, Rollout, RolloutPlan
from inferplane.engine.compute.loader import read_eos_token_ids
from inferplane.engine.compute.models.llama import LlamaModel
from inferplane.engine.compute.runner import TorchModelRunner
from inferplane.engine.core.confidence import Confidence, confidence_of
from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.engine import LLMEngine
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.engine.core.tokenizer import Tokenizer
from inferplane.gateway.books.metrics import GatewayMetrics
from inferplane.gateway.books.quality import QualityBook
from inferplane.gateway.books.tap import Usage

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
PROMPTS = ("What is the capital of France?", "Name a colour.", "Say hello in French.")
NOISE = 0.3  # of each weight tensor's standard deviation
BASE, CANARY = "chat", "chat.rollout"


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _config(directory: Path) -> EngineConfig:
    return EngineConfig(
        model=str(directory), dtype="float32", device="cpu", kv_cache_bytes=16 << 20
    )


def _answers(model: LlamaModel, directory: Path, tokenizer: Tokenizer) -> list[Confidence]:
    config = _config(directory)
    runner = TorchModelRunner(model, config, torch.device("cpu"), read_eos_token_ids(directory))
    engine = LLMEngine(config, runner, tokenizer)
    params = SamplingParams(max_tokens=8, temperature=1.0, seed=1, ignore_eos=True, logprobs=0)
    for index, text in enumerate(PROMPTS):
        engine.add_request(str(index), tokenizer.encode_chat([{"role": "user", "content": text}]),
                           params)  # fmt: skip
    logprobs: dict[str, list[float]] = {str(i): [] for i in range(len(PROMPTS))}
    for _ in range(200):
        for update in engine.step():
            logprobs[update.request_id] += [t.logprob or 0.0 for t in update.new_tokens]
        if not engine.has_unfinished():
            break
    found = [confidence_of(values) for values in logprobs.values()]
    assert all(c is not None for c in found)
    return [c for c in found if c is not None]


def _perturbed(model: LlamaModel) -> LlamaModel:
    noisy = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        last = f"layers.{len(noisy.layers) - 1}."
        for name, weight in noisy.named_buffers():  # the layers keep weights as buffers
            if name.startswith(last) and weight.dim() == 2:
                noise = torch.randn(weight.shape, generator=generator, dtype=weight.dtype)
                weight.add_(noise * weight.std() * NOISE)
    return noisy


def _serve(
    book: QualityBook, metrics: GatewayMetrics, pool: str, answers: list[Confidence]
) -> None:
    for index in range(60):  # the same few answers, as many times as the gates need
        confidence = answers[index % len(answers)]
        usage = Usage(20, confidence.tokens, mean_logprob=confidence.mean_logprob,
                      low_confidence_share=confidence.low_confidence_share)  # fmt: skip
        book.answered("chat", pool, pool, usage)
        metrics.observe("chat", pool, 200, 0.3)
        metrics.ttft.labels("chat", pool).observe(0.05)


def test_a_perturbed_canary_is_rolled_back_on_confidence_alone(smollm2_dir: Path) -> None:
    model = TorchModelRunner.from_config(_config(smollm2_dir)).model
    tokenizer = Tokenizer.from_dir(smollm2_dir)
    good = _answers(model, smollm2_dir, tokenizer)
    bad = _answers(_perturbed(model), smollm2_dir, tokenizer)
    metrics = GatewayMetrics()
    book = QualityBook(metrics.registry)
    _serve(book, metrics, BASE, good)
    _serve(book, metrics, CANARY, bad)
    windows = {
        pool: gate_window.window(
            gate_window.read(metrics.requests, metrics.ttft, pool, book.reading(pool)),
            gate_window.PoolCounts(),
        )
        for pool in (BASE, CANARY)
    }
    canary, baseline = windows[CANARY], windows[BASE]
    assert (canary.errors, canary.ttft_p95_s) == (baseline.errors, baseline.ttft_p95_s)
    assert canary.mean_logprob is not None and baseline.mean_logprob is not None
    assert canary.mean_logprob < baseline.mean_logprob - 0.5
    plan = RolloutPlan(BASE, "chat-perturbed", hold_s=0, gates=Gates(logprob_drop=0.5))
    decision = Rollout.start(plan).evaluate(0.0, canary, baseline)
    assert decision.action == "rollback" and decision.reason.startswith("mean logprob")
    latency_only = RolloutPlan(BASE, "chat-perturbed", hold_s=0)
    assert Rollout.start(latency_only).evaluate(0.0, canary, baseline).action == "advance"
