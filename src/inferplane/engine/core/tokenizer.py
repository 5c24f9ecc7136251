"""Text <-> token ids for a Hugging Face model directory, and chat prompts from its template.

Loads tokenizer.json with the `tokenizers` library (no transformers import on the serving
path), reads special tokens and flags from tokenizer_config.json, and collects every EOS id the
model's configs name. Chat templates are rendered in jinja2's immutable sandbox: a template is
code shipped with a model, so it must not reach Python internals or mutate its inputs.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer as BackendTokenizer

__all__ = ["ChatTemplateError", "NoChatTemplateError", "Tokenizer", "TokenizerSettings"]


class ChatTemplateError(ValueError):
    """The chat template failed to render these messages (the server answers 400)."""


class NoChatTemplateError(ChatTemplateError):
    """The model ships no chat template, so it only serves plain completions."""


@dataclass(frozen=True)
class TokenizerSettings:
    """What tokenizer_config.json and the model configs say beyond tokenizer.json itself."""

    bos_token: str | None = None
    eos_token: str | None = None
    add_bos_token: bool = False
    add_eos_token: bool = False
    chat_template: str | None = None
    model_max_length: int | None = None
    extra_eos_token_ids: tuple[int, ...] = ()  # from config.json and generation_config.json
    special_tokens: Mapping[str, str] | None = None  # names the template may use (pad_token ...)


class Tokenizer:
    """Implements the engine's TextTokenizer protocol over a `tokenizers.Tokenizer`."""

    def __init__(self, backend: BackendTokenizer, settings: TokenizerSettings) -> None:
        self._backend = backend
        self._settings = settings
        self._bos_id = self._id_of(settings.bos_token)
        eos_from_config = _optional(self._id_of(settings.eos_token))
        self._eos_ids = _unique([*eos_from_config, *settings.extra_eos_token_ids])
        self._template: jinja2.Template | None = None

    @classmethod
    def from_dir(cls, directory: Path | str) -> "Tokenizer":
        """Load from a HF model directory holding tokenizer.json."""
        directory = Path(directory)
        path = directory / "tokenizer.json"
        if not path.is_file():
            raise ValueError(f"{directory} has no tokenizer.json: only fast tokenizers are loaded")
        backend = BackendTokenizer.from_file(str(path))
        return cls(backend, read_settings(directory))

    @property
    def backend(self) -> BackendTokenizer:
        return self._backend

    @property
    def settings(self) -> TokenizerSettings:
        return self._settings

    @property
    def vocab_size(self) -> int:
        return int(self._backend.get_vocab_size(with_added_tokens=True))

    @property
    def eos_token_ids(self) -> Sequence[int]:
        return self._eos_ids

    @property
    def bos_token_id(self) -> int | None:
        return self._bos_id

    @property
    def has_chat_template(self) -> bool:
        return self._settings.chat_template is not None

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text`; BOS / EOS only where the config asks (add_bos_token ...).

        Pass add_special_tokens=False for text rendered by a chat template, which already
        spells out its special tokens.
        """
        ids: list[int] = self._backend.encode(text, add_special_tokens=False).ids
        if add_special_tokens and self._settings.add_bos_token and self._bos_id is not None:
            ids.insert(0, self._bos_id)
        if add_special_tokens and self._settings.add_eos_token and self._eos_ids:
            ids.append(self._eos_ids[0])
        return ids

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return str(self._backend.decode(list(token_ids), skip_special_tokens=skip_special_tokens))

    def token_to_id(self, token: str) -> int | None:
        found = self._backend.token_to_id(token)
        return None if found is None else int(found)

    def id_to_token(self, token_id: int) -> str | None:
        found = self._backend.id_to_token(token_id)
        return None if found is None else str(found)

    def apply_chat_template(
        self,
        messages: Sequence[Mapping[str, Any]],
        add_generation_prompt: bool = True,
        **extra: Any,
    ) -> str:
        """Render OpenAI-style messages into the model's prompt text.

        `content` may be a string or a list of {"type": "text", "text": ...} parts (joined by
        newlines). Raises NoChatTemplateError without a template and ChatTemplateError when
        the template rejects the messages or tries something the sandbox forbids.
        """
        template = self._compiled_template()
        variables = {
            **self._special_token_variables(),
            **extra,
            "messages": [normalize_message(message) for message in messages],
            "add_generation_prompt": add_generation_prompt,
        }
        try:
            return template.render(**variables)
        except ChatTemplateError:
            raise
        except jinja2.exceptions.SecurityError as error:
            raise ChatTemplateError(f"chat template did something unsafe: {error}") from error
        except (jinja2.TemplateError, TypeError, ValueError, KeyError) as error:
            raise ChatTemplateError(f"chat template failed: {error}") from error

    def encode_chat(self, messages: Sequence[Mapping[str, Any]]) -> list[int]:
        """Prompt ids for chat messages, ending with the assistant's turn opener."""
        return self.encode(self.apply_chat_template(messages), add_special_tokens=False)

    def _id_of(self, token: str | None) -> int | None:
        return None if token is None else self.token_to_id(token)

    def _compiled_template(self) -> jinja2.Template:
        if self._template is None:
            source = self._settings.chat_template
            if source is None:
                raise NoChatTemplateError(
                    "this model has no chat template: use the completions endpoint, or give "
                    "the model directory a chat_template in tokenizer_config.json"
                )
            self._template = compile_chat_template(source)
        return self._template

    def _special_token_variables(self) -> dict[str, str]:
        names = dict(self._settings.special_tokens or {})
        names["bos_token"] = self._settings.bos_token or ""
        names["eos_token"] = self._settings.eos_token or ""
        return names


def normalize_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the message whose list-of-parts content is joined into one string."""
    normalized = dict(message)
    content = normalized.get("content")
    if isinstance(content, list):
        normalized["content"] = "\n".join(_text_parts(content))
    return normalized


def _text_parts(parts: list[Any]) -> list[str]:
    texts: list[str] = []
    for part in parts:
        if not isinstance(part, Mapping) or part.get("type") != "text":
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise ChatTemplateError(f"content part of type {kind!r} is not supported: text only")
        texts.append(str(part.get("text", "")))
    return texts


def compile_chat_template(source: str) -> jinja2.Template:
    """Compile a template in the sandbox with the helpers HF chat templates expect."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.loopcontrols", _GenerationTag],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as error:
        raise ChatTemplateError(f"chat template does not parse: {error}") from error


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # Unlike jinja2's own tojson, no HTML escaping: the output is a prompt, not a web page.
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _raise_exception(message: str) -> NoReturn:
    raise ChatTemplateError(f"chat template rejected the messages: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class _GenerationTag(Extension):
    """`{% generation %}...{% endgeneration %}` marks assistant text for training masks; for
    inference it renders its body unchanged."""

    tags = {"generation"}  # noqa: RUF012 (jinja2 declares it a plain set)

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


def read_settings(directory: Path) -> TokenizerSettings:
    """Gather special tokens, flags and the chat template from the directory's JSON files."""
    config = _read_json(directory / "tokenizer_config.json")
    special = {
        name: text
        for name in ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token")
        if (text := _token_text(config.get(name))) is not None
    }
    max_length = config.get("model_max_length")
    return TokenizerSettings(
        bos_token=special.get("bos_token"),
        eos_token=special.get("eos_token"),
        add_bos_token=bool(config.get("add_bos_token", False)),
        add_eos_token=bool(config.get("add_eos_token", False)),
        chat_template=_chat_template(directory, config),
        model_max_length=max_length if isinstance(max_length, int) else None,
        extra_eos_token_ids=_config_eos_ids(directory),
        special_tokens=special,
    )


def _chat_template(directory: Path, config: Mapping[str, Any]) -> str | None:
    jinja_file = directory / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}]
        named = {item.get("name"): item.get("template") for item in template}
        template = named.get("default")
    return template if isinstance(template, str) else None


def _config_eos_ids(directory: Path) -> tuple[int, ...]:
    ids: list[int] = []
    for name in ("generation_config.json", "config.json"):
        value = _read_json(directory / name).get("eos_token_id")
        ids.extend([value] if isinstance(value, int) else value or [])
    return tuple(_unique(ids))


def _token_text(value: Any) -> str | None:
    """Special tokens are stored as a string or as a serialized AddedToken dict."""
    if isinstance(value, Mapping):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _optional(value: int | None) -> list[int]:
    return [] if value is None else [value]


def _unique(values: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(int(value) for value in values))
