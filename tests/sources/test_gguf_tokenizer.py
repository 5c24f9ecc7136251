"""Tokenizers rebuilt from GGUF metadata give the ids the model was trained with: the same as
the demo model's own tokenizer.json, and the same as transformers builds from the file."""

from pathlib import Path
from typing import Any

import pytest
from gguf import GGUFWriter
from transformers import AutoTokenizer

from inferplane.engine.core.tokenizer import Tokenizer
from inferplane.sources import SourceError
from inferplane.sources.gguf_meta import GgufFile
from inferplane.sources.gguf_tokenizer import build_tokenizer, byte_alphabet
from tests.sources.gguf_files import TinyLlama, random_llama, write_llama_gguf

SAMPLE = (
    "The café's naïve señor ate crème brûlée über alles. Ça va? Straße, smörgåsbord.\n"
    "日本語のテキストです。中文文本，还有标点！한국어 문장. Привет, мир. مرحبا\n"  # noqa: RUF001
    "Emoji: 🚀🎉 ✅ 👩‍💻 🇫🇷\n"
    "def add(a: int, b: int) -> int:\n    return a + b  # 12 + 345 = 357\n"
    "\tif x != None and y >= 3.14: print(f'{x!r}')  \n\n  trailing  spaces   "
)
SPECIALS = "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
MESSAGES = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Quelle est la capitale de la France ?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "写一首关于海的诗 🌊"},
]


def test_byte_alphabet_is_a_bijection_over_printable_characters() -> None:
    table = byte_alphabet()
    assert len(set(table.values())) == 256
    assert table[ord("A")] == "A" and table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ"


def test_rebuilt_tokenizer_equals_the_demo_tokenizer(tmp_path: Path, tiny_model_dir: Path) -> None:
    shape = TinyLlama()
    path = write_llama_gguf(tmp_path / "m.gguf", random_llama(shape), shape, tiny_model_dir)
    rebuilt = build_tokenizer(GgufFile.open(path))
    original = Tokenizer.from_dir(tiny_model_dir).backend
    for text in (SAMPLE, SPECIALS):
        assert rebuilt.encode(text).ids == original.encode(text).ids
    assert rebuilt.decode(rebuilt.encode(SAMPLE).ids) == SAMPLE


@pytest.mark.parametrize("pre", ["llama-bpe", "qwen2", "smollm"])
def test_pre_tokenizer_splits_match_transformers(
    tmp_path: Path, tiny_model_dir: Path, pre: str
) -> None:
    shape = TinyLlama()
    path = write_llama_gguf(
        tmp_path / "m.gguf", random_llama(shape), shape, tiny_model_dir, pre_tokenizer=pre
    )
    ours = build_tokenizer(GgufFile.open(path))
    theirs: Any = AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name)
    assert ours.encode(SAMPLE).ids == theirs.encode(SAMPLE, add_special_tokens=False)


@pytest.fixture(scope="module")
def smollm2(smollm2_dir: Path) -> Tokenizer:
    """SmolLM2's tokenizer as the engine loads it from the imported directory."""
    return Tokenizer.from_dir(smollm2_dir)


@pytest.fixture(scope="module")
def smollm2_reference(smollm2_gguf: Path) -> Any:
    return AutoTokenizer.from_pretrained(smollm2_gguf.parent, gguf_file=smollm2_gguf.name)


def test_smollm2_ids_match_transformers(smollm2: Tokenizer, smollm2_reference: Any) -> None:
    for text in (SAMPLE, SPECIALS, "a", " ", "\n\n"):
        assert smollm2.encode(text) == smollm2_reference.encode(text), text


def test_smollm2_decode_round_trips(smollm2: Tokenizer) -> None:
    assert smollm2.decode(smollm2.encode(SAMPLE)) == SAMPLE


def test_smollm2_chat_template_matches_transformers(
    smollm2: Tokenizer, smollm2_reference: Any
) -> None:
    text = smollm2.apply_chat_template(MESSAGES)
    expected = smollm2_reference.apply_chat_template(
        MESSAGES, tokenize=False, add_generation_prompt=True
    )
    assert text == expected
    assert text.endswith("<|im_start|>assistant\n")
    assert smollm2.encode_chat(MESSAGES) == smollm2_reference.encode(text, add_special_tokens=False)


def test_smollm2_special_tokens_and_eos(smollm2: Tokenizer, smollm2_reference: Any) -> None:
    assert list(smollm2.eos_token_ids) == [smollm2_reference.eos_token_id] == [2]
    assert smollm2.settings.eos_token == "<|im_end|>"
    assert smollm2.bos_token_id == smollm2_reference.bos_token_id
    assert smollm2.vocab_size == 49152


def test_other_tokenizer_models_are_refused(tmp_path: Path) -> None:
    """Unigram (t5), WordPiece (bert), ...: only gpt2 and llama vocabularies are rebuilt."""
    writer = GGUFWriter(tmp_path / "m.gguf", arch="llama")
    writer.add_tokenizer_model("t5")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(SourceError, match="tokenizer model 't5'"):
        build_tokenizer(GgufFile.open(tmp_path / "m.gguf"))
