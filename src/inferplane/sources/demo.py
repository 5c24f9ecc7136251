"""Demo models: Llama-architecture checkpoints with seeded random weights, in HF layout.

`tiny` is a few million parameters for tests; `small` has Qwen2.5-0.5B's shapes (hidden 896,
24 layers, 14 query heads, 2 KV heads, intermediate 4864, tied embeddings, 32k vocabulary),
about 386M parameters, for benchmarks. The same seed gives byte-identical files.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from inferplane.sources.demo_tokenizer import SPECIAL_TOKENS, write_tokenizer

Preset = Literal["tiny", "small"]
# Wider than the usual 0.02, so greedy decoding varies from token to token and top-1 margins
# are wide: token-identity tests against transformers then mean something.
INIT_STD = 0.1


@dataclass(frozen=True)
class DemoShape:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    tie_word_embeddings: bool
    max_position_embeddings: int
    torch_dtype: str

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


PRESETS: dict[str, DemoShape] = {
    "tiny": DemoShape(4096, 256, 4, 8, 4, 688, False, 4096, "float32"),
    "small": DemoShape(32000, 896, 24, 14, 2, 4864, True, 32768, "bfloat16"),
}


def write_demo_model(directory: Path, preset: Preset = "tiny", seed: int = 0) -> Path:
    """Write a complete HF-layout model directory; return it."""
    shape = PRESETS[preset]
    directory.mkdir(parents=True, exist_ok=True)
    _write_json(directory / "config.json", hf_config(shape))
    _write_json(directory / "generation_config.json", _generation_config())
    write_tokenizer(directory, shape.vocab_size, seed, shape.max_position_embeddings)
    from inferplane.sources.demo_weights import save_random_weights  # noqa: PLC0415 (torch)

    weights = directory / "model.safetensors"
    save_random_weights(weight_shapes(shape), shape.torch_dtype, INIT_STD, seed, weights)
    return directory


def hf_config(shape: DemoShape) -> dict[str, Any]:
    fields = asdict(shape)
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        **fields,
        "head_dim": shape.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": 0.0,
        "initializer_range": INIT_STD,
        "bos_token_id": None,
        "eos_token_id": SPECIAL_TOKENS.index("<|im_end|>"),
        "pad_token_id": SPECIAL_TOKENS.index("<|endoftext|>"),
        "use_cache": True,
    }


def _generation_config() -> dict[str, Any]:
    return {
        "eos_token_id": [SPECIAL_TOKENS.index("<|im_end|>"), SPECIAL_TOKENS.index("<|endoftext|>")],
        "pad_token_id": SPECIAL_TOKENS.index("<|endoftext|>"),
        "do_sample": False,
    }


def weight_shapes(shape: DemoShape) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes, as transformers' LlamaForCausalLM names them."""
    hidden, kv = shape.hidden_size, shape.num_key_value_heads * shape.head_dim
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (shape.vocab_size, hidden)}
    for layer in range(shape.num_hidden_layers):
        prefix = f"model.layers.{layer}"
        shapes |= {
            f"{prefix}.input_layernorm.weight": (hidden,),
            f"{prefix}.self_attn.q_proj.weight": (hidden, hidden),
            f"{prefix}.self_attn.k_proj.weight": (kv, hidden),
            f"{prefix}.self_attn.v_proj.weight": (kv, hidden),
            f"{prefix}.self_attn.o_proj.weight": (hidden, hidden),
            f"{prefix}.post_attention_layernorm.weight": (hidden,),
            f"{prefix}.mlp.gate_proj.weight": (shape.intermediate_size, hidden),
            f"{prefix}.mlp.up_proj.weight": (shape.intermediate_size, hidden),
            f"{prefix}.mlp.down_proj.weight": (hidden, shape.intermediate_size),
        }
    shapes["model.norm.weight"] = (hidden,)
    if not shape.tie_word_embeddings:
        shapes["lm_head.weight"] = (shape.vocab_size, hidden)
    return shapes


def parameter_count(shape: DemoShape) -> int:
    total = 0
    for dims in weight_shapes(shape).values():
        count = 1
        for size in dims:
            count *= size
        total += count
    return total


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
