"""A GGUF file's tokenizer as tokenizer.json and tokenizer_config.json.

GGUF stores no tokenizer.json: it stores the vocabulary, the BPE merges, a type per token
(normal, control, user-defined, ...), the special token ids, the chat template and the name
of the pre-tokenizer llama.cpp applies (`tokenizer.ggml.pre`). Byte-level BPE vocabularies
(`tokenizer.ggml.model` = gpt2: SmolLM, Llama 3, Qwen2, ...) are rebuilt here, and SentencePiece
ones (llama: Llama 2, Mistral, TinyLlama, ...) in gguf_sentencepiece, with the `tokenizers`
library, so the engine's tokenizer loads them as any HF model directory.
"""

import json
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

from inferplane.sources.errors import SourceError
from inferplane.sources.gguf_meta import GgufFile
from inferplane.sources.gguf_sentencepiece import build_sentencepiece

# llama.cpp's token types that match whole in the text
_UNKNOWN, _CONTROL, _USER_DEFINED = 2, 3, 4
_BYTE_LEVEL, _SENTENCEPIECE = "gpt2", "llama"  # tokenizer.ggml.model

# Text splits that differ from GPT-2's, by llama.cpp's pre-tokenizer name. Every other name
# (gpt2, smollm, ...) splits as GPT-2 does: the byte-level pre-tokenizer's own pattern.
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRE_TOKENIZER_SPLITS = {
    "llama-bpe": _LLAMA3_SPLIT,
    "llama3": _LLAMA3_SPLIT,
    "llama-v3": _LLAMA3_SPLIT,
    "smaug-bpe": _LLAMA3_SPLIT,
    "qwen2": _QWEN2_SPLIT,
}


def byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> printable character table that byte-level vocabularies are spelled in.

    Printable Latin-1 bytes stand for themselves; the rest (control bytes, space, ...) are
    shifted, in byte order, to the characters from U+0100 on.
    """
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    kept += range(ord("®"), ord("ÿ") + 1)
    table = {byte: chr(byte) for byte in kept}
    shifted = (byte for byte in range(256) if byte not in table)
    for offset, byte in enumerate(shifted):
        table[byte] = chr(256 + offset)
    return table


def build_tokenizer(gguf: GgufFile) -> Tokenizer:
    kind = gguf.require("tokenizer.ggml.model")
    if kind == _BYTE_LEVEL:
        return _byte_level(gguf)
    if kind == _SENTENCEPIECE:
        tokenizer = build_sentencepiece(gguf)
        tokens: list[str] = gguf.require("tokenizer.ggml.tokens")
        # llama.cpp matches its <unk> whole too, and transformers makes it special
        _add_whole_tokens(tokenizer, list(zip(tokens, _types(gguf), strict=False)), _UNKNOWN)
        return tokenizer
    raise SourceError(
        f"{gguf.path.name}: tokenizer model {kind!r} is not supported: only byte-level BPE "
        "(gpt2) and SentencePiece (llama) vocabularies are imported from GGUF"
    )


def _byte_level(gguf: GgufFile) -> Tokenizer:
    tokens: list[str] = gguf.require("tokenizer.ggml.tokens")
    merges = [tuple(merge.split(" ", 1)) for merge in gguf.require("tokenizer.ggml.merges")]
    table = byte_alphabet()
    alphabet = frozenset(table.values())
    vocab = {_spelled(token, table, alphabet): index for index, token in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tokenizer.pre_tokenizer = _pre_tokenizer(str(gguf.value("tokenizer.ggml.pre", "default")))
    tokenizer.decoder = decoders.ByteLevel()
    # A token spelled outside the byte alphabet cannot be matched whole in the text without
    # growing the vocabulary past the model's embedding, so it stays an ordinary token.
    whole = [(t, kind) for t, kind in zip(tokens, _types(gguf), strict=False) if set(t) <= alphabet]
    _add_whole_tokens(tokenizer, whole)
    return tokenizer


def _types(gguf: GgufFile) -> list[int]:
    return [int(kind) for kind in gguf.value("tokenizer.ggml.token_type") or []]


def _spelled(token: str, table: dict[int, str], alphabet: frozenset[str]) -> str:
    """Vocabularies are written in the byte alphabet; a token written in plain text (some
    control tokens are) is respelled so it keeps its own id."""
    if set(token) <= alphabet:
        return token
    return "".join(table[byte] for byte in token.encode("utf-8"))


def _pre_tokenizer(name: str) -> pre_tokenizers.PreTokenizer:
    split = PRE_TOKENIZER_SPLITS.get(name)
    if split is None:
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(split), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def _add_whole_tokens(tokenizer: Tokenizer, tokens: list[tuple[str, int]], *also: int) -> None:
    """Control tokens (and those of the types in `also`) become special tokens, user-defined
    ones plain added tokens: both are matched whole in the text instead of being cut into
    pieces."""
    special_kinds = {_CONTROL, *also}
    special = [token for token, kind in tokens if kind in special_kinds]
    user = [token for token, kind in tokens if kind == _USER_DEFINED]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in user])


def tokenizer_config(gguf: GgufFile) -> dict[str, Any]:
    """tokenizer_config.json: special tokens by text, BOS/EOS flags, the chat template."""
    tokens: list[str] = gguf.require("tokenizer.ggml.tokens")
    # llama.cpp adds BOS to a SentencePiece vocabulary whose file does not say otherwise
    bos_default = gguf.value("tokenizer.ggml.model") == _SENTENCEPIECE
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": bool(gguf.value("tokenizer.ggml.add_bos_token", bos_default)),
        "add_eos_token": bool(gguf.value("tokenizer.ggml.add_eos_token", False)),
        "clean_up_tokenization_spaces": False,
    }
    for name, key in (("bos", "bos"), ("eos", "eos"), ("unk", "unknown"), ("pad", "padding")):
        token_id = gguf.value(f"tokenizer.ggml.{key}_token_id")
        config[f"{name}_token"] = None if token_id is None else tokens[int(token_id)]
    context = gguf.value(f"{gguf.architecture}.context_length")
    if context is not None:
        config["model_max_length"] = int(context)
    template = gguf.value("tokenizer.chat_template")
    if template is not None:
        config["chat_template"] = str(template)
    return config


def write_tokenizer(gguf: GgufFile, directory: Path) -> None:
    build_tokenizer(gguf).save(str(directory / "tokenizer.json"), pretty=False)
    text = json.dumps(tokenizer_config(gguf), indent=2, sort_keys=True) + "\n"
    (directory / "tokenizer_config.json").write_text(text, encoding="utf-8")
