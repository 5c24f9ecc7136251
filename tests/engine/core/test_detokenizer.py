from collections.abc import Sequence
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from inferplane.engine.core.detokenizer import REPLACEMENT, IncrementalDetokenizer, as_decode


def byte_decode(ids: Sequence[int]) -> str:
    """A byte-level 'tokenizer': token id = one byte."""
    return bytes(ids).decode("utf-8", errors="replace")


def feed(detok: IncrementalDetokenizer, ids: Sequence[int]) -> list[str]:
    return [detok.add(token) for token in ids]


def test_multibyte_characters_wait_until_complete() -> None:
    text = "aé€😀b"
    pieces = feed(IncrementalDetokenizer(byte_decode), list(text.encode()))
    assert "".join(pieces) == text
    assert all(REPLACEMENT not in piece for piece in pieces)
    assert pieces[:3] == ["a", "", "é"]


def test_real_tokenizer_round_trip(tiny_model_dir: Path) -> None:
    tokenizer = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    text = "Hello wörld, 你好世界 and 🙂🚀 emoji; naïve café."
    prompt = tokenizer.encode("The answer:").ids
    ids = tokenizer.encode(text).ids
    detok = IncrementalDetokenizer(as_decode(tokenizer), prompt)
    pieces = feed(detok, ids)
    assert "".join(pieces) + detok.flush() == tokenizer.decode(ids)
    assert all(REPLACEMENT not in piece for piece in pieces)


def test_stop_string_across_tokens_is_trimmed() -> None:
    detok = IncrementalDetokenizer(byte_decode, stop=["STOP"])
    pieces = feed(detok, list(b"hi ST"))
    assert "".join(pieces) == "hi "  # "ST" could start the stop string: held back
    assert detok.add(ord("O")) == ""
    assert detok.add(ord("P")) == ""
    assert detok.stopped
    assert detok.stop_reason == "STOP"
    assert detok.text == "hi "
    assert detok.add(ord("x")) == ""
    assert detok.flush() == ""


def test_held_text_is_released_when_it_stops_matching() -> None:
    detok = IncrementalDetokenizer(byte_decode, stop=["STOP"])
    assert "".join(feed(detok, list(b"aSTx"))) == "aSTx"
    assert not detok.stopped


def test_include_stop_string() -> None:
    detok = IncrementalDetokenizer(byte_decode, stop=["\n\n"], include_stop_str_in_output=True)
    assert "".join(feed(detok, list(b"one\n\ntwo"))) == "one\n\n"
    assert detok.stop_reason == "\n\n"


def test_earliest_stop_string_wins() -> None:
    words = {1: "x", 2: "abcd"}
    detok = IncrementalDetokenizer(lambda ids: "".join(words[i] for i in ids), stop=["cd", "bc"])
    assert detok.add(1) == "x"
    # one token carrying several characters completes two stop strings at once
    assert detok.add(2) == "a"
    assert detok.stop_reason == "bc"
    assert detok.text == "xa"


def test_flush_releases_held_text_and_drops_an_incomplete_char() -> None:
    detok = IncrementalDetokenizer(byte_decode, stop=["END"])
    euro = "€".encode()
    pieces = feed(detok, [*b"ok E", euro[0], euro[1]])
    assert "".join(pieces) == "ok "
    assert detok.flush() == "E"
    assert detok.flush() == ""


def test_stop_string_completed_by_flush() -> None:
    detok = IncrementalDetokenizer(byte_decode, stop=["ab"])
    assert detok.add(ord("a")) == ""
    assert detok.flush() == "a"


def test_prompt_context_shapes_spacing(tiny_model_dir: Path) -> None:
    tokenizer = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    ids = tokenizer.encode("one two three").ids
    detok = IncrementalDetokenizer(as_decode(tokenizer), ids[:1])
    assert "".join(feed(detok, ids[1:])) == tokenizer.decode(ids)[len(tokenizer.decode(ids[:1])) :]


def test_as_decode_accepts_callables_and_rejects_others() -> None:
    assert as_decode(byte_decode)([104, 105]) == "hi"
    with pytest.raises(TypeError, match="decode"):
        as_decode(42)  # type: ignore[arg-type]
