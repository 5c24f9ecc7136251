"""Small Llama-architecture GGUF files for tests, written with the `gguf` package's writer.

`write_llama_gguf` lays out a model as llama.cpp's converter does: GGUF tensor names, q and k
rows interleaved per head for its rotary, the tokenizer as metadata, and each tensor in the
storage type a test asks for. Types the `gguf` package can quantize are quantized from the
float weights; the K-quants (which it only dequantizes) get random blocks with small scales:
both readers under test must then agree on what those blocks mean.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import quantize

Q = GGMLQuantizationType
TypeFor = Callable[[str], GGMLQuantizationType]  # GGUF tensor name -> storage type
QUANTIZABLE = (Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1)
# Byte offsets of the float16 scale fields in each K-quant block (the rest is codes and
# sub-block scales), and the largest |code x sub-block scale| the block can spell.
K_SCALE_FIELDS = {Q.Q2_K: (80, 82), Q.Q3_K: (108,), Q.Q4_K: (0, 2), Q.Q5_K: (0, 2), Q.Q6_K: (208,)}
K_RANGE = {Q.Q2_K: 45, Q.Q3_K: 128, Q.Q4_K: 945, Q.Q5_K: 1953, Q.Q6_K: 4096}

_LAYER_PARTS = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_GLOBAL_PARTS = {
    "model.embed_tokens": "token_embd",
    "model.norm": "output_norm",
    "lm_head": "output",
}


@dataclass(frozen=True)
class TinyLlama:
    """A small shape whose widths are multiples of 256, as K-quant blocks need."""

    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 512
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    tie_word_embeddings: bool = False
    rope_theta: float = 10000.0
    rope_factors: tuple[float, ...] = ()  # Llama 3's rope_freqs tensor, when given

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


def random_llama(shape: TinyLlama, seed: int = 0) -> dict[str, torch.Tensor]:
    """HF-named float32 weights, N(0, 0.05) matrices and norms near one."""
    generator = torch.Generator().manual_seed(seed)
    hidden, kv = shape.hidden_size, shape.num_kv_heads * shape.head_dim
    dims: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (shape.vocab_size, hidden)}
    for layer in range(shape.num_layers):
        p = f"model.layers.{layer}"
        dims |= {
            f"{p}.input_layernorm.weight": (hidden,),
            f"{p}.self_attn.q_proj.weight": (hidden, hidden),
            f"{p}.self_attn.k_proj.weight": (kv, hidden),
            f"{p}.self_attn.v_proj.weight": (kv, hidden),
            f"{p}.self_attn.o_proj.weight": (hidden, hidden),
            f"{p}.post_attention_layernorm.weight": (hidden,),
            f"{p}.mlp.gate_proj.weight": (shape.intermediate_size, hidden),
            f"{p}.mlp.up_proj.weight": (shape.intermediate_size, hidden),
            f"{p}.mlp.down_proj.weight": (hidden, shape.intermediate_size),
        }
    dims["model.norm.weight"] = (hidden,)
    if not shape.tie_word_embeddings:
        dims["lm_head.weight"] = (shape.vocab_size, hidden)
    weights = {}
    for name, size in dims.items():
        noise = torch.empty(size).normal_(0.0, 0.05, generator=generator)
        weights[name] = 1.0 + noise if len(size) == 1 else noise
    return weights


def llama3_rope_factors(shape: TinyLlama, rope: Mapping[str, float]) -> tuple[float, ...]:
    """What llama.cpp's converter stores for Llama 3 rotary scaling: per rotary frequency,
    the factor it is divided by (1 for short wavelengths, `factor` for long, blended between)."""
    half = shape.head_dim // 2
    wavelen = 2 * np.pi * shape.rope_theta ** (np.arange(half) * 2.0 / shape.head_dim)
    old, low, high = (rope[k] for k in ("original_max_position_embeddings", "low", "high"))
    smooth = (old / wavelen - low) / (high - low)
    factors = 1 / ((1 - smooth) / rope["factor"] + smooth)
    factors = np.where(wavelen < old / high, 1.0, factors)
    return tuple(float(f) for f in np.where(wavelen > old / low, rope["factor"], factors))


def gguf_name(hf: str) -> str:
    stem, _, suffix = hf.rpartition(".")
    if stem.startswith("model.layers."):
        _, _, index, part = stem.split(".", 3)
        return f"blk.{index}.{_LAYER_PARTS[part]}.{suffix}"
    return f"{_GLOBAL_PARTS[stem]}.{suffix}"


def interleave_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's rotary layout: per head, the two halves' rows alternate."""
    rows = weight.shape[0]
    split = weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
    return split.swapaxes(1, 2).reshape(weight.shape)


def stored(values: np.ndarray, kind: GGMLQuantizationType, rng: np.random.Generator) -> np.ndarray:
    """The bytes (or floats) to write for `values` in storage type `kind`."""
    if kind == Q.F32:
        return values.astype(np.float32)
    if kind == Q.F16:
        return values.astype(np.float16)
    if kind in QUANTIZABLE:
        return quantize(values.astype(np.float32), kind)
    return random_k_blocks(kind, values.shape, rng)


def random_k_blocks(
    kind: GGMLQuantizationType, shape: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    block, size = GGML_QUANT_SIZES[kind]
    rows, cols = shape
    data = rng.integers(0, 256, size=(rows * cols // block, size), dtype=np.uint8)
    for offset in K_SCALE_FIELDS.get(kind, ()):  # other types: random bytes, for refusals
        # weights of about 0.05 at most, as the float ones are
        spread = np.asarray(rng.uniform(0.5, 1.0, size=data.shape[0]), dtype=np.float64)
        scale = (spread * 0.05 / K_RANGE[kind]).astype(np.float16)
        data[:, offset : offset + 2] = scale.view(np.uint8).reshape(-1, 2)
    return data.reshape(rows, cols // block * size)


def write_llama_gguf(
    path: Path,
    weights: Mapping[str, torch.Tensor],
    shape: TinyLlama,
    tokenizer_dir: Path,
    *,
    type_for: TypeFor = lambda name: Q.F32,
    seed: int = 0,
    pre_tokenizer: str = "gpt2",
) -> Path:
    """A complete GGUF file: metadata, tokenizer from `tokenizer_dir`, converted tensors."""
    writer = GGUFWriter(path, arch="llama")
    _metadata(writer, shape)
    _tokenizer(writer, tokenizer_dir, pre_tokenizer)
    rng = np.random.default_rng(seed)
    heads = {"attn_q": shape.num_heads, "attn_k": shape.num_kv_heads}
    for hf, tensor in weights.items():
        name = gguf_name(hf)
        values = tensor.float().numpy()
        part = name.split(".")[-2]
        if part in heads:
            values = interleave_rows(values, heads[part])
        kind = type_for(name) if values.ndim == 2 else Q.F32
        writer.add_tensor(name, stored(values, kind, rng), raw_dtype=kind)
    if shape.rope_factors:
        writer.add_tensor("rope_freqs.weight", np.array(shape.rope_factors, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _metadata(writer: GGUFWriter, shape: TinyLlama) -> None:
    writer.add_context_length(512)
    writer.add_embedding_length(shape.hidden_size)
    writer.add_block_count(shape.num_layers)
    writer.add_feed_forward_length(shape.intermediate_size)
    writer.add_head_count(shape.num_heads)
    writer.add_head_count_kv(shape.num_kv_heads)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_vocab_size(shape.vocab_size)


def _tokenizer(writer: GGUFWriter, directory: Path, pre_tokenizer: str) -> None:
    """The byte-level BPE of an HF directory (the demo models') as GGUF metadata."""
    data = json.loads((directory / "tokenizer.json").read_text(encoding="utf-8"))
    vocab: dict[str, int] = data["model"]["vocab"]
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    special = {added["id"] for added in data["added_tokens"] if added["special"]}
    config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer)
    writer.add_token_list(tokens)
    writer.add_token_types([3 if index in special else 1 for index in range(len(tokens))])
    writer.add_token_merges(merges)
    writer.add_eos_token_id(vocab[config["eos_token"]])
    writer.add_pad_token_id(vocab[config["pad_token"]])
    writer.add_add_bos_token(False)
    writer.add_chat_template(config["chat_template"])
