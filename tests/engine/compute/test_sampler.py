"""Sampling rules on hand-made logits: greedy, filters, seeds, penalties, logprobs."""

import math

import pytest
import torch

from inferplane.engine.compute.sampler import Sampler, apply_penalties, filter_logits
from inferplane.engine.core.batch import SequenceChunk
from inferplane.engine.core.sampling_params import SamplingParams

VOCAB = 50


def _chunk(
    params: SamplingParams,
    output: tuple[int, ...] = (),
    prompt: tuple[int, ...] = (),
    request_id: str = "r",
) -> SequenceChunk:
    return SequenceChunk(request_id, [1], 0, [0], True, params, output, prompt)


def _logits(rows: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, VOCAB, generator=torch.Generator().manual_seed(seed)) * 3


def _draw(sampler: Sampler, logits: torch.Tensor, params: SamplingParams, n: int) -> list[int]:
    chunks = [_chunk(params)] * n
    return [t.token_id for t in sampler.sample(logits.expand(n, -1), chunks)]


def test_greedy_takes_the_argmax() -> None:
    logits = _logits(3)
    chunks = [_chunk(SamplingParams(temperature=0.0))] * 3
    tokens = [t.token_id for t in Sampler().sample(logits, chunks)]
    assert tokens == logits.argmax(-1).tolist()


def test_top_k_one_equals_greedy() -> None:
    logits = _logits()
    drawn = _draw(Sampler(), logits, SamplingParams(temperature=1.5, top_k=1), 20)
    assert set(drawn) == {int(logits.argmax())}


def test_top_k_and_top_p_keep_only_the_head() -> None:
    logits = _logits()
    top5 = set(logits[0].topk(5).indices.tolist())
    assert set(_draw(Sampler(), logits, SamplingParams(top_k=5), 200)) <= top5
    filtered = filter_logits(logits, [SamplingParams(top_p=0.5)])
    kept = torch.softmax(logits, -1)[torch.isfinite(filtered)]
    # The kept tokens are the most likely ones, and just enough of them to pass 0.5.
    assert kept.sum() >= 0.5
    assert kept.sum() - kept.min() < 0.5


def test_min_p_drops_unlikely_tokens() -> None:
    logits = _logits()
    filtered = filter_logits(logits, [SamplingParams(min_p=0.2)])
    probs = torch.softmax(logits, -1)
    assert torch.equal(torch.isfinite(filtered), probs >= 0.2 * probs.max())


def test_seeded_requests_repeat_whatever_the_batch() -> None:
    logits = _logits(4, seed=3)
    seeded = SamplingParams(temperature=1.0, seed=42)
    alone = Sampler(seed=1).sample(logits[2:3], [_chunk(seeded)])
    mixed_chunks = [_chunk(SamplingParams(temperature=1.0))] * 2 + [_chunk(seeded)] * 2
    mixed = Sampler(seed=2).sample(logits, mixed_chunks)
    assert mixed[2].token_id == alone[0].token_id


def test_seeds_change_with_the_step() -> None:
    logits = torch.zeros(1, VOCAB)  # uniform: every draw is noise alone
    params = SamplingParams(temperature=1.0, seed=7)
    draws = [
        Sampler().sample(logits, [_chunk(params, output=tuple(range(n)))])[0].token_id
        for n in range(8)
    ]
    assert len(set(draws)) > 1


def test_sampling_follows_the_distribution() -> None:
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
    sampler = Sampler(seed=0)
    chunks = [_chunk(SamplingParams())] * 2000
    counts = torch.bincount(
        torch.tensor([t.token_id for t in sampler.sample(logits.expand(2000, -1), chunks)]),
        minlength=3,
    )
    assert counts.tolist()[0] == pytest.approx(1400, abs=100)


def test_repetition_penalty_touches_only_seen_tokens() -> None:
    logits = torch.tensor([[2.0, -2.0, 1.0, -1.0]])
    params = SamplingParams(repetition_penalty=2.0)
    out = apply_penalties(logits, [_chunk(params, output=(1,), prompt=(0,))])
    assert out.tolist() == [[1.0, -4.0, 1.0, -1.0]]


def test_presence_and_frequency_penalties_count_output_tokens() -> None:
    logits = torch.zeros(1, 4)
    params = SamplingParams(presence_penalty=0.5, frequency_penalty=0.25)
    out = apply_penalties(logits, [_chunk(params, output=(2, 2, 3), prompt=(0,))])
    assert out.tolist() == [[0.0, 0.0, -1.0, -0.75]]
    assert apply_penalties(logits, [_chunk(SamplingParams())]) is logits


def test_logprobs_are_the_raw_distribution() -> None:
    logits = _logits()
    params = SamplingParams(temperature=0.0, logprobs=3, repetition_penalty=1.5)
    (token,) = Sampler().sample(logits, [_chunk(params, prompt=(int(logits.argmax()),))])
    raw = torch.log_softmax(logits[0], -1)
    assert token.logprob == pytest.approx(float(raw[token.token_id]))
    values = [alt.logprob for alt in token.top_logprobs]
    assert values == sorted(values, reverse=True)
    assert [alt.token_id for alt in token.top_logprobs] == raw.topk(3).indices.tolist()
    assert sum(math.exp(v) for v in raw.tolist()) == pytest.approx(1.0, abs=1e-5)


def test_logprobs_zero_gives_only_the_chosen_token() -> None:
    (token,) = Sampler().sample(_logits(), [_chunk(SamplingParams(logprobs=0))])
    assert token.logprob is not None
    assert token.top_logprobs == ()
    (plain,) = Sampler().sample(_logits(), [_chunk(SamplingParams())])
    assert plain.logprob is None
