"""SentencePiece vocabularies from GGUF files: the ids, the decoded text and the BOS flag equal
what transformers builds from the same file, on a small scored vocabulary written here."""

from pathlib import Path
from typing import Any

import pytest
from gguf import GGUFWriter
from transformers import AutoTokenizer

from inferplane.engine.core.detokenizer import IncrementalDetokenizer
from inferplane.engine.core.tokenizer import Tokenizer
from inferplane.sources.gguf_meta import GgufFile
from inferplane.sources.gguf_sentencepiece import SPACE, derived_merges
from inferplane.sources.gguf_tokenizer import build_tokenizer, write_tokenizer

SAMPLE = (
    "the cat sat in the café. Ça va? the  theatre\n"
    "Привет, мир! 日本語のテキスト。 Emoji: 🚀 👩‍💻\n"
    "def cat(a: int) -> int:\n\treturn a + 12  # the end  "
)
SPECIALS = "<|im_start|>user\nthe cat<|im_end|>\n<|im_start|>assistant\n<think>mir</think>"
# Pieces best first; every single character of the text below is a piece too (lower scores),
# the rest of the text falls back to <0xNN> byte tokens.
PIECES = [
    f"{SPACE}the", f"{SPACE}cat", "the", f"{SPACE}th", "th", "he", f"{SPACE}ca", "at",
    f"{SPACE}c", f"{SPACE}t", f"{SPACE}sat", f"{SPACE}in", "in", f"{SPACE}a", f"{SPACE}мир",
    "ми", "Пр", "ив", "ет", "ри", "Привет", "日本", "語の", "テキ", "スト", f"{SPACE}{SPACE}",
    "é.", "fé", f"{SPACE}caf", "re", "tu", "rn", "eatre", "atre", "def", f"{SPACE}int", "nt",
]  # fmt: skip
CHARACTERS = "thecasinйПриветмрдфолжзкбюьъ日本語のテキスト。é.?!,:;()->+#0123456789"  # noqa: RUF001
SPECIAL_PIECES = ["<|im_start|>", "<|im_end|>"]  # control
USER_PIECES = ["<think>", "</think>"]  # user-defined


def write_sentencepiece_gguf(path: Path, *, space_prefix: bool | None = None) -> Path:
    """A GGUF file holding only a SentencePiece vocabulary and the metadata readers expect."""
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{byte:02X}>" for byte in range(256))]
    types = [2, 3, 3, *[6] * 256]  # unknown, control, control, bytes
    scores = [0.0] * len(tokens)
    singles = [c for c in dict.fromkeys(SPACE + CHARACTERS) if c not in PIECES]
    for rank, piece in enumerate([*PIECES, *singles]):
        tokens.append(piece)
        types.append(1)
        scores.append(-float(rank) if len(piece) > 1 else -1000.0 - rank)
    for piece in SPECIAL_PIECES + USER_PIECES:
        tokens.append(piece)
        types.append(3 if piece in SPECIAL_PIECES else 4)
        scores.append(0.0)
    writer = GGUFWriter(path, arch="llama")
    writer.add_context_length(512)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    if space_prefix is not None:
        writer.add_add_space_prefix(space_prefix)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sentencepiece_gguf(tmp_path_factory.mktemp("spm") / "spm.gguf")


@pytest.fixture(scope="module")
def reference(gguf_path: Path) -> Any:
    return AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)


@pytest.fixture(scope="module")
def engine_tokenizer(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    """The tokenizer as the engine loads it from an imported model directory."""
    directory = tmp_path_factory.mktemp("imported")
    write_tokenizer(GgufFile.open(gguf_path), directory)
    return Tokenizer.from_dir(directory)


TEXTS = (SAMPLE, SPECIALS, "a", " ", "  the", "\n", "Ça", "🚀", "<unk>the</s>")


@pytest.mark.parametrize("text", TEXTS)
def test_ids_match_transformers(gguf_path: Path, reference: Any, text: str) -> None:
    ours = build_tokenizer(GgufFile.open(gguf_path))
    assert ours.encode(text).ids == reference.encode(text, add_special_tokens=False)


@pytest.mark.parametrize("text", TEXTS)
def test_engine_adds_bos_as_transformers(
    engine_tokenizer: Tokenizer, reference: Any, text: str
) -> None:
    assert engine_tokenizer.bos_token_id == 1
    assert engine_tokenizer.encode(text) == reference.encode(text)
    assert engine_tokenizer.encode(text)[0] == 1


def test_the_vocabulary_is_used_whole(engine_tokenizer: Tokenizer) -> None:
    """Merges rank by score (' the' in one piece), unknown characters fall back to bytes,
    special and user-defined tokens stay whole."""
    ids = engine_tokenizer.encode("the cat 🚀<|im_end|><think>", add_special_tokens=False)
    pieces = [engine_tokenizer.id_to_token(i) for i in ids]
    assert pieces == [
        f"{SPACE}the", f"{SPACE}cat", SPACE, "<0xF0>", "<0x9F>", "<0x9A>", "<0x80>",
        "<|im_end|>", "<think>",
    ]  # fmt: skip


def test_decode_matches_transformers(engine_tokenizer: Tokenizer, reference: Any) -> None:
    ids = engine_tokenizer.encode(SAMPLE, add_special_tokens=False)
    assert engine_tokenizer.decode(ids) == reference.decode(ids) == SAMPLE
    with_specials = engine_tokenizer.encode(SPECIALS)
    assert engine_tokenizer.decode(with_specials, skip_special_tokens=False) == reference.decode(
        with_specials, skip_special_tokens=False
    )


def test_streamed_text_equals_the_whole_decode(engine_tokenizer: Tokenizer) -> None:
    """Token by token (spaces carried as '▁' and characters split into byte tokens) the
    engine's detokenizer puts out the same text."""
    prompt = engine_tokenizer.encode("the cat")
    output = engine_tokenizer.encode(SAMPLE, add_special_tokens=False)
    stream = IncrementalDetokenizer(engine_tokenizer.decode, prompt)
    text = "".join(stream.add(token) for token in output) + stream.flush()
    assert text == " " + SAMPLE  # after a prompt, the output's first '▁' is a space


def test_without_space_prefix_nothing_is_prepended(tmp_path: Path) -> None:
    path = write_sentencepiece_gguf(tmp_path / "m.gguf", space_prefix=False)
    tokenizer = build_tokenizer(GgufFile.open(path))
    ids = tokenizer.encode("the cat").ids
    assert tokenizer.id_to_token(ids[0]) == "the"
    assert tokenizer.decode(ids) == "the cat"


def test_merges_rank_by_the_joined_piece_score() -> None:
    vocab = {"a": 0, "b": 1, "ab": 2, "abb": 3, "bb": 4}
    scores = {"a": -9.0, "b": -9.0, "ab": -2.0, "abb": -1.0, "bb": -3.0}
    assert derived_merges(scores, vocab) == [("ab", "b"), ("a", "bb"), ("a", "b"), ("b", "b")]
