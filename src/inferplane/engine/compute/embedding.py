"""Sentence embeddings from BERT-family encoders, and an async front that micro-batches them.

`EmbeddingModel` runs a transformers encoder: tokenize (or take token ids), truncate to the
model's limit or refuse, run padded batches, mean-pool over the attention mask, L2-normalise,
optionally cut to fewer `dimensions` (re-normalised, as OpenAI's text-embedding-3 does).
`AsyncEmbeddingModel` keeps the event loop free: concurrent requests that arrive within a few
milliseconds are coalesced into one forward pass run in a worker thread.
"""

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from transformers import AutoModel, AutoTokenizer

EmbeddingInput = str | Sequence[int]
FloatArray = npt.NDArray[np.float32]


class InputTooLongError(ValueError):
    """An input exceeds the model's maximum length and truncation was not asked for."""

    def __init__(self, index: int, num_tokens: int, max_length: int) -> None:
        super().__init__(
            f"input {index} has {num_tokens} tokens but this model's maximum context length is "
            f"{max_length} tokens: shorten it, or ask for truncation"
        )
        self.index = index
        self.num_tokens = num_tokens
        self.max_length = max_length


@dataclass(frozen=True)
class TokenizedInput:
    token_ids: list[int]  # after truncation
    original_length: int

    @property
    def truncated(self) -> bool:
        return self.original_length > len(self.token_ids)


@dataclass(frozen=True)
class EmbeddingResult:
    """One float32 row per input, in input order, with usage for billing."""

    embeddings: FloatArray
    prompt_tokens: int
    truncated: tuple[bool, ...] = field(default=())


class EmbeddingModel:
    """A transformers encoder with mean pooling; thread-safe for one caller at a time."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_length: int,
        max_batch_size: int = 32,
        device: str = "cpu",
    ) -> None:
        if max_length < 2 or max_batch_size < 1:
            raise ValueError("max_length must be >= 2 and max_batch_size >= 1")
        self._model = model
        self._tokenizer = tokenizer
        self._max_length = max_length
        self._max_batch_size = max_batch_size
        self._device = torch.device(device)
        self._special_ids = frozenset(int(i) for i in tokenizer.all_special_ids)
        self._pad_id = int(tokenizer.pad_token_id or 0)

    @classmethod
    def load(
        cls, directory: Path | str, device: str = "auto", max_batch_size: int = 32
    ) -> "EmbeddingModel":
        """Load a HF encoder directory (e.g. a sentence-transformers MiniLM) in float32."""
        directory = Path(directory)
        resolved = _resolve_device(device)
        model = AutoModel.from_pretrained(directory, dtype=torch.float32).to(resolved).eval()
        tokenizer = AutoTokenizer.from_pretrained(directory)
        max_length = model_max_length(directory, tokenizer.model_max_length)
        return cls(model, tokenizer, max_length, max_batch_size, resolved)

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def dimension(self) -> int:
        return int(self._model.config.hidden_size)

    def tokenize(self, inputs: Sequence[EmbeddingInput]) -> list[TokenizedInput]:
        """Token ids for each input (strings get the model's special tokens; id lists are
        taken as they are), cut to max_length keeping a trailing special token."""
        if not inputs:
            raise ValueError("input must not be empty: give at least one string or token list")
        texts = [(i, text) for i, text in enumerate(inputs) if isinstance(text, str)]
        encoded = self._encode_texts([text for _, text in texts])
        ids: list[list[int]] = [[] for _ in inputs]
        for (index, _), row in zip(texts, encoded, strict=True):
            ids[index] = row
        for index, item in enumerate(inputs):
            if not isinstance(item, str):
                ids[index] = self._checked_ids(index, item)
        return [TokenizedInput(self._truncate(row), len(row)) for row in ids]

    def embed(
        self,
        inputs: Sequence[EmbeddingInput],
        dimensions: int | None = None,
        truncate: bool = True,
    ) -> EmbeddingResult:
        """Embed a batch; raises InputTooLongError on overflow unless `truncate`."""
        self.check_dimensions(dimensions)
        tokenized = self.tokenize(inputs)
        if not truncate:
            raise_on_overflow(tokenized, self._max_length)
        vectors = self.forward([item.token_ids for item in tokenized])
        return _result(vectors, tokenized, dimensions)

    def forward(self, token_ids: Sequence[list[int]]) -> FloatArray:
        """Normalised full-size embeddings; shortest-first chunks waste the least padding."""
        order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
        out = np.empty((len(token_ids), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self._max_batch_size):
            chunk = order[start : start + self._max_batch_size]
            out[chunk] = self._forward_padded([token_ids[i] for i in chunk])
        return out

    def check_dimensions(self, dimensions: int | None) -> None:
        if dimensions is not None and not 1 <= dimensions <= self.dimension:
            raise ValueError(
                f"dimensions must be between 1 and {self.dimension} for this model, "
                f"got {dimensions}"
            )

    @torch.inference_mode()
    def _forward_padded(self, rows: list[list[int]]) -> FloatArray:
        width = max(len(row) for row in rows)
        ids = torch.full((len(rows), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        ids, mask = ids.to(self._device), mask.to(self._device)
        hidden = self._model(input_ids=ids, attention_mask=mask).last_hidden_state
        pooled = mean_pool(hidden.float(), mask)
        normalised = torch.nn.functional.normalize(pooled, p=2.0, dim=-1)
        return np.asarray(normalised.cpu().numpy(), dtype=np.float32)

    def _encode_texts(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        # verbose=False: long inputs are measured here and cut below, not warned about.
        batch = self._tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)
        return [list(row) for row in batch["input_ids"]]

    def _checked_ids(self, index: int, ids: Sequence[int]) -> list[int]:
        vocab = int(self._model.config.vocab_size)
        row = [int(token) for token in ids]
        if not row:
            raise ValueError(f"input {index} is an empty token list")
        if any(not 0 <= token < vocab for token in row):
            raise ValueError(f"input {index} has token ids outside the vocabulary [0, {vocab})")
        return row

    def _truncate(self, row: list[int]) -> list[int]:
        if len(row) <= self._max_length:
            return row
        if row[-1] in self._special_ids:  # keep [SEP] (or the like) as the model saw in training
            return [*row[: self._max_length - 1], row[-1]]
        return row[: self._max_length]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors the attention mask keeps (padding does not count)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def cut_dimensions(vectors: FloatArray, dimensions: int | None) -> FloatArray:
    """Keep the first `dimensions` components and re-normalise each row to unit length."""
    if dimensions is None or dimensions == vectors.shape[1]:
        return vectors
    head = vectors[:, :dimensions]
    norms = np.linalg.norm(head, axis=1, keepdims=True).clip(min=1e-12)
    return np.asarray(head / norms, dtype=np.float32)


def raise_on_overflow(tokenized: Sequence[TokenizedInput], max_length: int) -> None:
    for index, item in enumerate(tokenized):
        if item.truncated:
            raise InputTooLongError(index, item.original_length, max_length)


def model_max_length(directory: Path, tokenizer_limit: int | None = None) -> int:
    """The smallest of: sentence-transformers' max_seq_length, the tokenizer's limit and the
    position table, so we embed exactly what the model was trained to see."""
    limits = [_json_int(directory / "config.json", "max_position_embeddings")]
    limits.append(_json_int(directory / "sentence_bert_config.json", "max_seq_length"))
    if tokenizer_limit is not None and tokenizer_limit < 1_000_000:  # HF's "no limit" is ~1e30
        limits.append(tokenizer_limit)
    known = [limit for limit in limits if limit]
    if not known:
        raise ValueError(f"{directory}: cannot tell the model's maximum length from its configs")
    return min(known)


def _json_int(path: Path, key: str) -> int | None:
    if not path.is_file():
        return None
    value = json.loads(path.read_text(encoding="utf-8")).get(key)
    return value if isinstance(value, int) else None


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _result(
    vectors: FloatArray, tokenized: Sequence[TokenizedInput], dimensions: int | None
) -> EmbeddingResult:
    return EmbeddingResult(
        embeddings=cut_dimensions(vectors, dimensions),
        prompt_tokens=sum(len(item.token_ids) for item in tokenized),
        truncated=tuple(item.truncated for item in tokenized),
    )


@dataclass
class _Job:
    inputs: Sequence[EmbeddingInput]
    dimensions: int | None
    truncate: bool
    future: "asyncio.Future[EmbeddingResult]"


class AsyncEmbeddingModel:
    """Runs an EmbeddingModel off the event loop, coalescing concurrent requests.

    The first request opens a window of `max_wait_s`; requests arriving in it (or while the
    previous batch runs) share one forward pass of up to `max_batch_inputs` inputs. A request
    that fails validation fails alone; the rest of its batch is unaffected.
    """

    def __init__(
        self, model: EmbeddingModel, max_batch_inputs: int = 64, max_wait_s: float = 0.002
    ) -> None:
        if max_batch_inputs < 1 or max_wait_s < 0:
            raise ValueError("max_batch_inputs must be >= 1 and max_wait_s >= 0")
        self.model = model
        self._max_batch_inputs = max_batch_inputs
        self._max_wait_s = max_wait_s
        self._pending: list[_Job] = []
        self._flusher: asyncio.Task[None] | None = None
        self._window: asyncio.Event | None = None
        self.batches_run = 0  # forward passes so far; tests and metrics read it

    async def embed(
        self,
        inputs: Sequence[EmbeddingInput],
        dimensions: int | None = None,
        truncate: bool = True,
    ) -> EmbeddingResult:
        self.model.check_dimensions(dimensions)
        future: asyncio.Future[EmbeddingResult] = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(list(inputs), dimensions, truncate, future))
        if self._window is not None and self._pending_inputs() >= self._max_batch_inputs:
            self._window.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all())
        return await future

    async def _flush_all(self) -> None:
        while self._pending:
            self._window = asyncio.Event()
            if self._pending_inputs() < self._max_batch_inputs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._window.wait(), self._max_wait_s)
            self._window = None
            jobs = self._take_batch()
            await self._run(jobs)

    def _pending_inputs(self) -> int:
        return sum(len(job.inputs) for job in self._pending)

    def _take_batch(self) -> list[_Job]:
        """The oldest jobs up to the input budget; always at least one, however large."""
        taken, count = 0, 0
        for job in self._pending:
            if taken and count + len(job.inputs) > self._max_batch_inputs:
                break
            taken, count = taken + 1, count + len(job.inputs)
        jobs, self._pending = self._pending[:taken], self._pending[taken:]
        return jobs

    async def _run(self, jobs: list[_Job]) -> None:
        try:
            outcomes = await asyncio.to_thread(_run_jobs, self.model, jobs)
        except Exception as error:  # the model itself failed: every caller learns why
            outcomes = [error] * len(jobs)
        self.batches_run += 1
        for job, outcome in zip(jobs, outcomes, strict=True):
            if job.future.done():  # the caller went away
                continue
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)


def _run_jobs(model: EmbeddingModel, jobs: list[_Job]) -> list[EmbeddingResult | Exception]:
    """Tokenize each job, fail the invalid ones, and embed all the rest in one forward."""
    prepared: list[list[TokenizedInput] | Exception] = []
    for job in jobs:
        try:
            tokenized = model.tokenize(job.inputs)
            if not job.truncate:
                raise_on_overflow(tokenized, model.max_length)
            prepared.append(tokenized)
        except ValueError as error:
            prepared.append(error)
    rows = [item.token_ids for p in prepared if not isinstance(p, Exception) for item in p]
    vectors = model.forward(rows) if rows else np.empty((0, model.dimension), np.float32)
    outcomes: list[EmbeddingResult | Exception] = []
    offset = 0
    for job, p in zip(jobs, prepared, strict=True):
        if isinstance(p, Exception):
            outcomes.append(p)
            continue
        outcomes.append(_result(vectors[offset : offset + len(p)], p, job.dimensions))
        offset += len(p)
    return outcomes
