"""Choosing the next token from a batch of logits, one row per sampling request.

Order, as in vLLM: repetition penalty (HF-style, over prompt and output), presence and
frequency penalties (OpenAI-style, over output), then greedy rows take the argmax; the other
rows divide by temperature, apply top_k, top_p and min_p, and draw with the exponential race
(argmax of probs / Exp(1) noise). A request with a seed draws its noise from its own
generator seeded by (seed, tokens generated so far), so its tokens do not depend on which
other requests share the batch.

Logprobs are those of the raw model distribution (log_softmax of the logits before penalties,
temperature and filtering), as vLLM returns them by default. Every sampled token also carries
its raw logprob as `confidence` (one logsumexp per row), whether or not logprobs were asked
for: the request's confidence is tallied from it.
"""

import dataclasses
from collections.abc import Sequence

import torch

from inferplane.engine.core.batch import SampledToken, SequenceChunk, TokenLogprob
from inferplane.engine.core.sampling_params import SamplingParams

_SEED_MIX = 0x9E3779B97F4A7C15  # spreads (seed, step) pairs over the generator's seed space
_SEED_MASK = (1 << 63) - 1


class Sampler:
    """Holds the generator for unseeded requests (seeded from the engine's seed)."""

    def __init__(self, seed: int = 0, device: torch.device | None = None) -> None:
        self.device = device or torch.device("cpu")
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def sample(self, logits: torch.Tensor, chunks: Sequence[SequenceChunk]) -> list[SampledToken]:
        """logits [B, vocab] float32, one row per chunk -> one SampledToken per chunk."""
        raw_logprobs = None
        if any(c.params.logprobs is not None for c in chunks):
            raw_logprobs = torch.log_softmax(logits, dim=-1)
        raw = logits  # apply_penalties copies before it changes anything
        logits = apply_penalties(logits, chunks)
        token_ids = self._choose(logits, chunks)
        return _outputs(token_ids, raw_logprobs, chunks, chosen_logprobs(raw, token_ids))

    def _choose(self, logits: torch.Tensor, chunks: Sequence[SequenceChunk]) -> torch.Tensor:
        chosen = logits.argmax(dim=-1)
        random_rows = [i for i, c in enumerate(chunks) if not c.params.greedy]
        if not random_rows:
            return chosen
        params = [chunks[i].params for i in random_rows]
        rows = torch.tensor(random_rows, device=logits.device)
        probs = torch.softmax(filter_logits(logits[rows], params), dim=-1)
        noise = self._noise(probs, [chunks[i] for i in random_rows])
        chosen[rows] = (probs / noise).argmax(dim=-1)
        return chosen

    def _noise(self, probs: torch.Tensor, chunks: Sequence[SequenceChunk]) -> torch.Tensor:
        noise = torch.empty_like(probs).exponential_(generator=self.generator)
        for row, chunk in enumerate(chunks):
            if chunk.params.seed is not None:
                generator = request_generator(chunk, probs.device)
                noise[row].exponential_(generator=generator)
        return noise


def request_generator(chunk: SequenceChunk, device: torch.device) -> torch.Generator:
    """A generator that depends only on the request's seed and its number of output tokens."""
    seed = chunk.params.seed or 0
    mixed = (seed * _SEED_MIX + len(chunk.output_token_ids)) & _SEED_MASK
    return torch.Generator(device=device).manual_seed(mixed)


def apply_penalties(logits: torch.Tensor, chunks: Sequence[SequenceChunk]) -> torch.Tensor:
    """Penalised copy of the logits (the input itself when no request asks for penalties)."""
    rows = [i for i, c in enumerate(chunks) if c.params.needs_penalties]
    if not rows:
        return logits
    logits = logits.clone()
    for i in rows:
        _penalise_row(logits[i], chunks[i])
    return logits


def _penalise_row(row: torch.Tensor, chunk: SequenceChunk) -> None:
    params, vocab = chunk.params, row.shape[0]
    if params.repetition_penalty != 1.0:
        seen = [*chunk.prompt_token_ids, *chunk.output_token_ids]
        ids = torch.unique(torch.tensor(seen, dtype=torch.long, device=row.device))
        ids = ids[ids < vocab]
        values = row[ids]
        penalty = params.repetition_penalty
        row[ids] = torch.where(values > 0, values / penalty, values * penalty)
    if chunk.output_token_ids and (params.presence_penalty or params.frequency_penalty):
        out = torch.tensor(list(chunk.output_token_ids), dtype=torch.long, device=row.device)
        counts = torch.bincount(out[out < vocab], minlength=vocab).to(row.dtype)
        row -= params.frequency_penalty * counts + params.presence_penalty * (counts > 0)


def filter_logits(logits: torch.Tensor, params: Sequence[SamplingParams]) -> torch.Tensor:
    """Temperature, then top_k, top_p and min_p; removed tokens get -inf."""
    device = logits.device
    temperature = torch.tensor([p.temperature for p in params], device=device)
    logits = logits / temperature[:, None]
    if any(p.top_k > 0 or p.top_p < 1.0 for p in params):
        logits = _top_k_top_p(logits, params)
    if any(p.min_p > 0.0 for p in params):
        min_p = torch.tensor([p.min_p for p in params], device=device)
        probs = torch.softmax(logits, dim=-1)
        threshold = probs.max(dim=-1, keepdim=True).values * min_p[:, None]
        logits = logits.masked_fill(probs < threshold, float("-inf"))
    return logits


def _top_k_top_p(logits: torch.Tensor, params: Sequence[SamplingParams]) -> torch.Tensor:
    vocab = logits.shape[-1]
    device = logits.device
    top_k = torch.tensor([p.top_k if p.top_k > 0 else vocab for p in params], device=device)
    top_p = torch.tensor([p.top_p for p in params], device=device)
    ordered, order = logits.sort(dim=-1, descending=True)
    ranks = torch.arange(vocab, device=device)
    ordered = ordered.masked_fill(ranks[None, :] >= top_k[:, None], float("-inf"))
    probs = torch.softmax(ordered, dim=-1)
    # Keep a token while the mass before it is below top_p: the most likely always stays.
    outside = (probs.cumsum(dim=-1) - probs) > top_p[:, None]
    ordered = ordered.masked_fill(outside, float("-inf"))
    return torch.empty_like(logits).scatter_(-1, order, ordered)


def _outputs(
    token_ids: torch.Tensor,
    raw_logprobs: torch.Tensor | None,
    chunks: Sequence[SequenceChunk],
    confidences: Sequence[float],
) -> list[SampledToken]:
    ids: list[int] = token_ids.tolist()
    outputs = []
    for row, (chunk, token) in enumerate(zip(chunks, ids, strict=True)):
        wanted = chunk.params.logprobs
        confidence = confidences[row]
        if wanted is None or raw_logprobs is None:
            outputs.append(SampledToken(chunk.request_id, token, confidence=confidence))
            continue
        sampled = _with_logprobs(chunk.request_id, token, raw_logprobs[row], wanted)
        outputs.append(dataclasses.replace(sampled, confidence=confidence))
    return outputs


def _with_logprobs(request_id: str, token: int, logprobs: torch.Tensor, k: int) -> SampledToken:
    top: tuple[TokenLogprob, ...] = ()
    if k > 0:
        values, indices = logprobs.topk(k)
        pairs = zip(indices.tolist(), values.tolist(), strict=True)
        top = tuple(TokenLogprob(int(i), float(v)) for i, v in pairs)
    return SampledToken(request_id, token, float(logprobs[token]), top)


def chosen_logprobs(raw_logits: torch.Tensor, token_ids: torch.Tensor) -> list[float]:
    """Each row's log-probability of its chosen token under the raw distribution: the chosen
    logit less the row's logsumexp, one reduction over the vocabulary per row (no
    log_softmax of the whole row), from the logits the step already has."""
    chosen = raw_logits.gather(-1, token_ids.view(-1, 1)).squeeze(-1)
    values: list[float] = (chosen - torch.logsumexp(raw_logits, dim=-1)).tolist()
    return values
