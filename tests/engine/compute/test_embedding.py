import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from inferplane.engine.compute.embedding import (
    AsyncEmbeddingModel,
    EmbeddingModel,
    InputTooLongError,
    cut_dimensions,
    model_max_length,
)

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome.",
    "Le café est délicieux ☕ 日本語",
    "A cheetah is running behind its prey.",
]


@pytest.fixture(scope="module")
def model(minilm_dir: Path) -> EmbeddingModel:
    return EmbeddingModel.load(minilm_dir, device="cpu", max_batch_size=4)


def _reference(directory: Path, texts: list[str]) -> np.ndarray:
    """Mean pooling written out directly over transformers, one text at a time."""
    tokenizer = AutoTokenizer.from_pretrained(directory)
    encoder = AutoModel.from_pretrained(directory).eval()
    rows: list[np.ndarray] = []
    for text in texts:
        batch = tokenizer(text, return_tensors="pt", truncation=True, max_length=256)
        with torch.no_grad():
            hidden = encoder(**batch).last_hidden_state[0]
        vector = hidden.mean(dim=0)
        rows.append((vector / vector.norm()).numpy())
    return np.asarray(np.stack(rows), dtype=np.float32)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    dots = np.sum(a * b, axis=1)
    return np.asarray(dots / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))


def test_matches_direct_transformers(model: EmbeddingModel, minilm_dir: Path) -> None:
    result = model.embed(SENTENCES)
    assert result.embeddings.dtype == np.float32 and result.embeddings.shape == (5, 384)
    assert np.all(_cosines(result.embeddings, _reference(minilm_dir, SENTENCES)) >= 0.999)
    assert np.allclose(np.linalg.norm(result.embeddings, axis=1), 1.0, atol=1e-5)


def test_matches_sentence_transformers(model: EmbeddingModel, minilm_dir: Path) -> None:
    st = pytest.importorskip("sentence_transformers")
    peer = st.SentenceTransformer(str(minilm_dir), device="cpu")
    expected = peer.encode(SENTENCES, convert_to_numpy=True)
    assert np.all(_cosines(model.embed(SENTENCES).embeddings, expected) >= 0.999)


def test_batching_equals_one_by_one(model: EmbeddingModel) -> None:
    together = model.embed(SENTENCES).embeddings  # batches of 4 with padding
    alone = np.concatenate([model.embed([text]).embeddings for text in SENTENCES])
    assert np.allclose(together, alone, atol=1e-5)


def test_similar_sentences_score_higher(model: EmbeddingModel) -> None:
    vectors = model.embed(SENTENCES).embeddings
    similar = float(vectors[0] @ vectors[1])
    assert similar > float(vectors[0] @ vectors[2]) + 0.2
    assert similar > float(vectors[0] @ vectors[4]) + 0.2


def test_token_ids_give_the_same_vector(model: EmbeddingModel, minilm_dir: Path) -> None:
    ids = AutoTokenizer.from_pretrained(minilm_dir)(SENTENCES[0])["input_ids"]
    result = model.embed([ids, SENTENCES[0]])
    assert np.allclose(result.embeddings[0], result.embeddings[1], atol=1e-6)
    assert result.prompt_tokens == 2 * len(ids)


def test_usage_counts_tokens_with_specials(model: EmbeddingModel) -> None:
    result = model.embed(["hello world", "hi"])  # [CLS] hello world [SEP] + [CLS] hi [SEP]
    assert result.prompt_tokens == 4 + 3
    assert result.truncated == (False, False)


def test_truncation_reported_or_refused(model: EmbeddingModel) -> None:
    long_text = "word " * 400
    result = model.embed([long_text, "short"])
    assert result.truncated == (True, False)
    assert result.prompt_tokens == model.max_length + 3
    with pytest.raises(InputTooLongError, match=r"input 0 has 402 tokens .* 256 tokens"):
        model.embed([long_text], truncate=False)


def test_truncated_input_keeps_its_sep(model: EmbeddingModel) -> None:
    tokenized = model.tokenize(["word " * 400])[0]
    assert len(tokenized.token_ids) == 256 and tokenized.token_ids[-1] == 102
    assert tokenized.original_length == 402


def test_dimensions_cut_and_renormalise(model: EmbeddingModel) -> None:
    full = model.embed(SENTENCES[:2]).embeddings
    short = model.embed(SENTENCES[:2], dimensions=64).embeddings
    assert short.shape == (2, 64)
    assert np.allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-5)
    assert np.allclose(short, cut_dimensions(full, 64), atol=1e-6)
    with pytest.raises(ValueError, match="between 1 and 384"):
        model.embed(SENTENCES[:1], dimensions=1000)


@pytest.mark.parametrize("bad", [[], [[]], [[10**9]]])
def test_bad_inputs_are_value_errors(model: EmbeddingModel, bad: Any) -> None:
    with pytest.raises(ValueError):
        model.embed(bad)


def test_max_length_comes_from_the_smallest_limit(minilm_dir: Path, tmp_path: Path) -> None:
    assert model_max_length(minilm_dir, 512) == 256  # sentence_bert_config says 256
    with pytest.raises(ValueError, match="maximum length"):
        model_max_length(tmp_path, None)


async def test_async_coalesces_concurrent_requests(model: EmbeddingModel) -> None:
    front = AsyncEmbeddingModel(model, max_batch_inputs=64, max_wait_s=0.05)
    results = await asyncio.wait_for(
        asyncio.gather(*(front.embed([text]) for text in SENTENCES)), timeout=30
    )
    assert front.batches_run == 1
    expected = model.embed(SENTENCES).embeddings
    got = np.concatenate([result.embeddings for result in results])
    assert np.allclose(got, expected, atol=1e-5)


async def test_async_failure_stays_with_its_request(model: EmbeddingModel) -> None:
    front = AsyncEmbeddingModel(model, max_wait_s=0.05)
    good = front.embed(SENTENCES[:2], dimensions=32)
    bad = front.embed(["word " * 400], truncate=False)
    results = await asyncio.wait_for(asyncio.gather(good, bad, return_exceptions=True), 30)
    assert isinstance(results[1], InputTooLongError)
    assert not isinstance(results[0], BaseException)
    assert results[0].embeddings.shape == (2, 32)
    assert front.batches_run == 1


async def test_async_splits_by_input_budget(model: EmbeddingModel) -> None:
    front = AsyncEmbeddingModel(model, max_batch_inputs=2, max_wait_s=0.01)
    calls = [front.embed([text]) for text in SENTENCES[:4]]
    results = await asyncio.wait_for(asyncio.gather(*calls), timeout=30)
    assert len(results) == 4 and front.batches_run == 2
    with pytest.raises(ValueError, match="dimensions"):
        await front.embed(["x"], dimensions=0)
