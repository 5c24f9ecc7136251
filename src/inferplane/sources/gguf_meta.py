"""A GGUF file's metadata, and the Hugging Face configs it implies for a Llama model.

GGUF keeps the model's shape under `<architecture>.*` keys (llama.cpp's names) and the
tokenizer under `tokenizer.*`. This module opens the file with the `gguf` package's reader
(memory-mapped: the tensors are not read here) and writes what config.json and
generation_config.json would say for the same model. Only the `llama` architecture is
accepted: Llama 2/3, Mistral, SmolLM and the other checkpoints llama.cpp converts as llama.
Rotary scaling: none, linear, or Llama 3's (recovered from the rope_freqs tensor).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFReader, ReaderTensor

from inferplane.sources.errors import SourceError

SUPPORTED_ARCHITECTURES = ("llama",)
_DEFAULT_ROPE_THETA = 10000.0


@dataclass(frozen=True)
class GgufFile:
    """An opened GGUF file: metadata values by key, and its tensors (memory-mapped)."""

    path: Path
    reader: GGUFReader

    @classmethod
    def open(cls, path: Path) -> "GgufFile":
        if not path.is_file():
            raise SourceError(f"GGUF file {path} does not exist")
        try:
            reader = GGUFReader(path)
        except (ValueError, OSError) as error:
            raise SourceError(f"{path} is not a readable GGUF file: {error}") from error
        return cls(path, reader)

    def value(self, key: str, default: Any = None) -> Any:
        field = self.reader.fields.get(key)
        return default if field is None else field.contents()

    def require(self, key: str) -> Any:
        value = self.value(key)
        if value is None:
            raise SourceError(f"{self.path.name}: metadata key {key!r} is missing")
        return value

    @property
    def architecture(self) -> str:
        return str(self.require("general.architecture"))

    @property
    def tensors(self) -> Sequence[ReaderTensor]:
        return self.reader.tensors

    def tensor_names(self) -> set[str]:
        return {tensor.name for tensor in self.reader.tensors}


@dataclass(frozen=True)
class LlamaShape:
    """The numbers the tensor conversion needs (rotary row order is per head)."""

    num_heads: int
    num_kv_heads: int
    head_dim: int


def check_architecture(gguf: GgufFile) -> str:
    arch = gguf.architecture
    if arch not in SUPPORTED_ARCHITECTURES:
        raise SourceError(
            f"{gguf.path.name}: architecture {arch!r} is not supported: only Llama-family "
            f"models ({', '.join(SUPPORTED_ARCHITECTURES)}) are imported from GGUF"
        )
    return arch


def llama_shape(gguf: GgufFile) -> LlamaShape:
    arch = check_architecture(gguf)
    heads = _int(gguf, f"{arch}.attention.head_count")
    hidden = _int(gguf, f"{arch}.embedding_length")
    head_dim = int(gguf.value(f"{arch}.attention.key_length", hidden // heads))
    kv_heads = int(gguf.value(f"{arch}.attention.head_count_kv", heads))
    return LlamaShape(heads, kv_heads, head_dim)


def hf_config(gguf: GgufFile, torch_dtype: str) -> dict[str, Any]:
    """config.json for the model in this file (LlamaForCausalLM)."""
    arch = check_architecture(gguf)
    shape = llama_shape(gguf)
    rope_dims = int(gguf.value(f"{arch}.rope.dimension_count", shape.head_dim))
    if rope_dims != shape.head_dim:
        raise SourceError(
            f"{gguf.path.name}: rotary over {rope_dims} of {shape.head_dim} head dimensions "
            "(partial rotary) is not supported"
        )
    names = gguf.tensor_names()
    vocab = gguf.value(f"{arch}.vocab_size") or len(gguf.require("tokenizer.ggml.tokens"))
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": int(vocab),
        "hidden_size": _int(gguf, f"{arch}.embedding_length"),
        "intermediate_size": _int(gguf, f"{arch}.feed_forward_length"),
        "num_hidden_layers": _int(gguf, f"{arch}.block_count"),
        "num_attention_heads": shape.num_heads,
        "num_key_value_heads": shape.num_kv_heads,
        "head_dim": shape.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": _int(gguf, f"{arch}.context_length"),
        "rms_norm_eps": float(gguf.require(f"{arch}.attention.layer_norm_rms_epsilon")),
        "rope_theta": float(gguf.value(f"{arch}.rope.freq_base", _DEFAULT_ROPE_THETA)),
        "rope_scaling": _rope_scaling(gguf, arch),
        "attention_bias": "blk.0.attn_q.bias" in names,
        "mlp_bias": False,
        "tie_word_embeddings": "output.weight" not in names,
        "torch_dtype": torch_dtype,
        "bos_token_id": gguf.value("tokenizer.ggml.bos_token_id"),
        "eos_token_id": gguf.value("tokenizer.ggml.eos_token_id"),
        "pad_token_id": gguf.value("tokenizer.ggml.padding_token_id"),
    }


def eos_token_ids(gguf: GgufFile) -> list[int]:
    """EOS, then end-of-turn and end-of-message where the file names them (Llama 3 ends a
    chat turn with <|eot_id|>, not with its EOS)."""
    keys = ("eos_token_id", "eot_token_id", "eom_token_id")
    ids = [gguf.value(f"tokenizer.ggml.{key}") for key in keys]
    return list(dict.fromkeys(int(i) for i in ids if i is not None))


def generation_config(gguf: GgufFile) -> dict[str, Any]:
    return {
        "bos_token_id": gguf.value("tokenizer.ggml.bos_token_id"),
        "eos_token_id": eos_token_ids(gguf),
        "pad_token_id": gguf.value("tokenizer.ggml.padding_token_id"),
    }


def _rope_scaling(gguf: GgufFile, arch: str) -> dict[str, Any] | None:
    kind = str(gguf.value(f"{arch}.rope.scaling.type", "none"))
    factors = next((t for t in gguf.tensors if t.name == "rope_freqs.weight"), None)
    if factors is not None:
        theta = float(gguf.value(f"{arch}.rope.freq_base", _DEFAULT_ROPE_THETA))
        return llama3_rope(np.asarray(factors.data, dtype=np.float64), theta, gguf.path.name)
    if kind == "none":
        return None
    if kind == "linear":
        return {"rope_type": "linear", "factor": float(gguf.require(f"{arch}.rope.scaling.factor"))}
    raise SourceError(f"{gguf.path.name}: rope scaling {kind!r} is not supported (none, linear)")


def llama3_rope(factors: np.ndarray, theta: float, name: str) -> dict[str, Any]:
    """Llama 3.1+ rotary scaling from the per-frequency factors GGUF stores (rope_freqs).

    The file keeps only the factors each frequency is divided by, not the parameters that
    made them. Meta's models use low_freq_factor 1 and high_freq_factor 4; the largest
    factor is `factor`, and the blended band gives the original context length. The
    parameters are accepted only if they reproduce every stored factor.
    """
    wavelen = 2 * np.pi * theta ** (np.arange(factors.size) * 2.0 / (2 * factors.size))
    factor = float(factors.max())
    blended = (factors > 1 + 1e-6) & (factors < factor - 1e-6)
    if factor <= 1 or not blended.any():
        raise SourceError(f"{name}: rope_freqs does not follow Llama 3's rotary scaling")
    low, high = 1.0, 4.0
    smooth = (1 / factors[blended] - 1 / factor) / (1 - 1 / factor)
    original = float(np.median(wavelen[blended] * (smooth * (high - low) + low)))
    original = float(round(original))
    if not np.allclose(_llama3_factors(wavelen, factor, low, high, original), factors, rtol=1e-3):
        raise SourceError(f"{name}: rope_freqs does not follow Llama 3's rotary scaling")
    return {
        "rope_type": "llama3",
        "factor": factor,
        "low_freq_factor": low,
        "high_freq_factor": high,
        "original_max_position_embeddings": int(original),
    }


def _llama3_factors(
    wavelen: np.ndarray, factor: float, low: float, high: float, original: float
) -> np.ndarray:
    smooth = (original / wavelen - low) / (high - low)
    blended = 1 / ((1 - smooth) / factor + smooth)
    out = np.where(wavelen < original / high, 1.0, blended)
    return np.where(wavelen > original / low, factor, out)


def _int(gguf: GgufFile, key: str) -> int:
    value = gguf.require(key)
    if not isinstance(value, int):
        raise SourceError(f"{gguf.path.name}: {key} is {value!r}; a single integer is supported")
    return value
