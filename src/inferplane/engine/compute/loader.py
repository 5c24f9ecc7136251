"""Loading Llama-family checkpoints from Hugging Face directories.

Reads config.json (llama, qwen2, qwen3 and mistral model types), resolves the source through
`inferplane.sources`, opens the safetensors shards memory-mapped, and refuses pickle
checkpoints, which can run code when loaded. The model itself is built in `models/`.
GGUF files reach this module already imported into this layout by `inferplane.sources`; their
Q8_0 projections arrive as int8 `weight` tensors with a float `weight_scale` per row, and
where 4-bit weights are asked their Q4_0 / Q4_1 projections come as blocks (q4_block_weights).
"""

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from inferplane.engine.compute.cpu_features import CpuFeatures, cpu_features
from inferplane.engine.compute.dtype_auto import auto_dtype

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3", "mistral")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_DTYPES = {
    "float32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "half": torch.float16,
}


@dataclass(frozen=True)
class RopeConfig:
    """Rotary embedding settings; `kind` is default, linear or llama3."""

    theta: float = 10000.0
    kind: str = "default"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a Llama-family decoder, read from config.json."""

    model_type: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    rms_norm_eps: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    rope: RopeConfig
    torch_dtype: str | None = None

    @property
    def q_size(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_kv_heads * self.head_dim


def read_model_config(directory: Path) -> ModelConfig:
    """Parse config.json; raise ValueError naming the field or model type that is unsupported."""
    raw: dict[str, Any] = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    model_type = str(raw.get("model_type", ""))
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"{directory}: model_type {model_type!r} is not supported; "
            f"use one of {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    heads = int(raw["num_attention_heads"])
    hidden = int(raw["hidden_size"])
    return ModelConfig(
        model_type=model_type,
        vocab_size=int(raw["vocab_size"]),
        hidden_size=hidden,
        num_layers=int(raw["num_hidden_layers"]),
        num_heads=heads,
        num_kv_heads=int(raw.get("num_key_value_heads") or heads),
        head_dim=int(raw.get("head_dim") or hidden // heads),
        intermediate_size=int(raw["intermediate_size"]),
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
        max_position_embeddings=int(raw.get("max_position_embeddings", 2048)),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        rope=_rope_config(raw),
        torch_dtype=raw.get("torch_dtype") or raw.get("dtype"),
    )


def _rope_config(raw: Mapping[str, Any]) -> RopeConfig:
    """Accept both layouts: rope_theta + rope_scaling, and the newer rope_parameters."""
    params = dict(raw.get("rope_parameters") or raw.get("rope_scaling") or {})
    theta = float(params.get("rope_theta", raw.get("rope_theta", 10000.0)))
    kind = str(params.get("rope_type") or params.get("type") or "default")
    if kind not in ("default", "linear", "llama3"):
        raise ValueError(
            f"rope scaling type {kind!r} is not supported: use default, linear or llama3 "
            "(or remove rope_scaling from config.json)"
        )
    return RopeConfig(
        theta=theta,
        kind=kind,
        factor=float(params.get("factor", 1.0)),
        low_freq_factor=float(params.get("low_freq_factor", 1.0)),
        high_freq_factor=float(params.get("high_freq_factor", 4.0)),
        original_max_position_embeddings=int(params.get("original_max_position_embeddings", 8192)),
    )


def read_eos_token_ids(directory: Path) -> tuple[int, ...]:
    """EOS ids from generation_config.json and config.json, in that order, deduplicated."""
    ids: list[int] = []
    for name in ("generation_config.json", "config.json"):
        path = directory / name
        if path.is_file():
            value = json.loads(path.read_text(encoding="utf-8")).get("eos_token_id")
            ids.extend(value if isinstance(value, list) else [] if value is None else [value])
    return tuple(dict.fromkeys(int(i) for i in ids))


def resolve_dtype(
    name: str, config: ModelConfig, device: torch.device, features: CpuFeatures | None = None
) -> torch.dtype:
    """ "auto" is dtype_auto's choice for this host (`features`, by default the detected
    ones); any other name is that dtype."""
    if name != "auto":
        return _DTYPES[name]
    checkpoint = _DTYPES.get(config.torch_dtype or "float32", torch.float32)
    return auto_dtype(features or cpu_features(), device, checkpoint)


def checkpoint_files(directory: Path) -> list[Path]:
    """The safetensors shards; a directory holding only pickle checkpoints is refused.

    The shard index, when present, names the files: some repositories also carry a
    differently named consolidated copy that must not be loaded twice.
    """
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return [directory / name for name in sorted(set(weight_map.values()))]
    if (directory / "model.safetensors").is_file():
        return [directory / "model.safetensors"]
    shards = sorted(directory.glob("*.safetensors"))
    if shards:
        return shards
    pickles = sorted(p for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ValueError(
            f"{pickles[0]} is a pickle checkpoint, which can run code when loaded and is "
            "refused: convert it to safetensors (save_pretrained(..., safe_serialization=True))"
        )
    raise ValueError(f"{directory} holds no *.safetensors weights")


def iter_tensors(directory: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of every shard, read through a memory map."""
    for shard in checkpoint_files(directory):
        with safe_open(str(shard), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a Mapping
                yield name, handle.get_tensor(name)


def q4_block_weights(directory: Path) -> dict[str, torch.Tensor]:
    """For a GGUF import, its Q4_0 / Q4_1 projections as 4-bit blocks read from the file (uint8
    `weight` codes, float16 `weight_scale` and `weight_min`; sources/gguf_tensors.py), which
    replace the import's dequantized values; empty for any other directory."""
    if not (directory / "import.json").is_file():
        return {}
    # loaded on use: the GGUF reader is not needed for other directories
    from inferplane.sources.gguf_tensors import stored_q4_weights  # noqa: PLC0415

    return stored_q4_weights(directory)
