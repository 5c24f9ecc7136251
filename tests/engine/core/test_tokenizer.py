import json
from pathlib import Path
from typing import Any

import pytest
from tokenizers import Tokenizer as BackendTokenizer
from transformers import AutoTokenizer

from inferplane.engine.core.protocol import TextTokenizer
from inferplane.engine.core.tokenizer import (
    ChatTemplateError,
    NoChatTemplateError,
    Tokenizer,
    TokenizerSettings,
)

TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Café, naïve, über. 日本語のテキスト。 Emoji: 🚀 🎉 ✅",
    "  leading and trailing spaces  \n\tand tabs",
    "<|im_start|>user\nhi<|im_end|>",
    "",
]
CHATS: list[list[dict[str, Any]]] = [
    [{"role": "user", "content": "Hi there!"}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Wie geht's? 日本 🚀"},
        {"role": "assistant", "content": "Gut."},
        {"role": "user", "content": "Und dir?"},
    ],
]


@pytest.fixture(scope="module")
def ours(tiny_model_dir: Path) -> Tokenizer:
    return Tokenizer.from_dir(tiny_model_dir)


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path) -> Any:
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _settings(template: str | None, **kwargs: Any) -> TokenizerSettings:
    return TokenizerSettings(eos_token="<|im_end|>", chat_template=template, **kwargs)


def test_is_a_text_tokenizer(ours: Tokenizer) -> None:
    as_protocol: TextTokenizer = ours
    assert as_protocol.encode("hi") == ours.encode("hi")


@pytest.mark.parametrize("text", TEXTS)
def test_encode_matches_transformers(ours: Tokenizer, reference: Any, text: str) -> None:
    assert ours.encode(text) == reference.encode(text)
    assert ours.encode(text, add_special_tokens=False) == reference.encode(
        text, add_special_tokens=False
    )


@pytest.mark.parametrize("text", TEXTS)
def test_decode_matches_transformers(ours: Tokenizer, reference: Any, text: str) -> None:
    ids = reference.encode(text)
    assert ours.decode(ids, skip_special_tokens=False) == reference.decode(ids)
    assert ours.decode(ids) == reference.decode(ids, skip_special_tokens=True)


def test_multibyte_round_trip(ours: Tokenizer) -> None:
    text = "naïve 日本語 🚀🎉 ✅ smörgåsbord"
    assert ours.decode(ours.encode(text)) == text


def test_eos_ids_are_the_union_of_the_configs(ours: Tokenizer) -> None:
    # tokenizer_config says <|im_end|> (2); generation_config adds <|endoftext|> (0)
    assert list(ours.eos_token_ids) == [2, 0]
    assert ours.bos_token_id is None


@pytest.mark.parametrize("messages", CHATS)
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_chat_matches_transformers(
    ours: Tokenizer, reference: Any, messages: list[dict[str, Any]], add_generation_prompt: bool
) -> None:
    expected = reference.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    assert ours.apply_chat_template(messages, add_generation_prompt) == expected


def test_chat_ids_match_transformers(ours: Tokenizer, reference: Any) -> None:
    expected = reference.apply_chat_template(CHATS[1], tokenize=True, add_generation_prompt=True)
    ids = expected["input_ids"] if hasattr(expected, "keys") else expected
    assert ours.encode_chat(CHATS[1]) == list(ids)


def test_content_parts_are_joined(ours: Tokenizer) -> None:
    parts = [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]
    rendered = ours.apply_chat_template([{"role": "user", "content": parts}])
    assert rendered == ours.apply_chat_template([{"role": "user", "content": "first\nsecond"}])


def test_non_text_parts_are_refused(ours: Tokenizer) -> None:
    image = [{"type": "image_url", "image_url": {"url": "x"}}]
    with pytest.raises(ChatTemplateError, match="image_url"):
        ours.apply_chat_template([{"role": "user", "content": image}])


def test_missing_template_is_a_clear_error(ours: Tokenizer) -> None:
    bare = Tokenizer(ours.backend, _settings(None))
    assert not bare.has_chat_template
    with pytest.raises(NoChatTemplateError, match="no chat template"):
        bare.apply_chat_template([{"role": "user", "content": "hi"}])


def test_helpers_available_to_templates(ours: Tokenizer) -> None:
    template = (
        "{{ bos_token }}|{{ eos_token }}|{{ messages | tojson }}|{{ strftime_now('%Y') | length }}"
        "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}"
        "{% generation %}[{{ m.content }}]{% endgeneration %}{% endfor %}"
    )
    tok = Tokenizer(ours.backend, _settings(template, bos_token="<|endoftext|>"))
    out = tok.apply_chat_template([{"role": "user", "content": "é"}, {"role": "x", "content": "y"}])
    head = (
        '<|endoftext|>|<|im_end|>|[{"role": "user", "content": "é"}, {"role": "x", "content": "y"}]'
    )
    assert out == f"{head}|4[é]"


def test_raise_exception_becomes_a_chat_error(ours: Tokenizer) -> None:
    template = "{% if messages[0].role != 'user' %}{{ raise_exception('user first') }}{% endif %}"
    tok = Tokenizer(ours.backend, _settings(template))
    with pytest.raises(ChatTemplateError, match="user first"):
        tok.apply_chat_template([{"role": "assistant", "content": "hi"}])


@pytest.mark.parametrize(
    "template",
    [
        "{{ messages.__class__.__mro__ }}",
        "{{ ''.__class__.__subclasses__() }}",
        "{% set _ = messages.append({'role': 'x'}) %}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_unsafe_templates_are_refused(ours: Tokenizer, template: str) -> None:
    tok = Tokenizer(ours.backend, _settings(template))
    with pytest.raises(ChatTemplateError):
        tok.apply_chat_template([{"role": "user", "content": "hi"}])


def test_syntax_error_is_a_chat_error(ours: Tokenizer) -> None:
    tok = Tokenizer(ours.backend, _settings("{% for m in messages %}"))
    with pytest.raises(ChatTemplateError, match="does not parse"):
        tok.apply_chat_template([{"role": "user", "content": "hi"}])


def test_config_flags_and_template_file(tmp_path: Path, tiny_model_dir: Path) -> None:
    backend = BackendTokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    backend.save(str(tmp_path / "tokenizer.json"))
    config = {
        "bos_token": {"content": "<|im_start|>", "special": True},
        "eos_token": "<|im_end|>",
        "add_bos_token": True,
        "chat_template": [{"name": "default", "template": "ignored: the .jinja file wins"}],
    }
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    (tmp_path / "config.json").write_text(json.dumps({"eos_token_id": [0, 2]}))
    (tmp_path / "chat_template.jinja").write_text("{{ bos_token }}{{ messages[0].content }}")
    tok = Tokenizer.from_dir(tmp_path)
    assert tok.encode("hi")[0] == 1 and tok.encode("hi", add_special_tokens=False)[0] != 1
    assert list(tok.eos_token_ids) == [2, 0]
    assert tok.apply_chat_template([{"role": "user", "content": "x"}]) == "<|im_start|>x"


def test_directory_without_tokenizer_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no tokenizer\.json"):
        Tokenizer.from_dir(tmp_path)
