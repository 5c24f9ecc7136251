"""Model variants built by transformers (random init), saved as safetensors, loaded by ours."""

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from inferplane.engine.compute.loader import read_model_config
from inferplane.engine.compute.models.llama import LlamaModel
from inferplane.engine.compute.quant import Int8Linear, quantize_per_channel
from inferplane.sources import resolve_source
from tests.engine.reference import fp32_runner, hf_logits, prefill_logits
from tests.sources.gguf_files import (
    Q,
    TinyLlama,
    TypeFor,
    llama3_rope_factors,
    random_llama,
    write_llama_gguf,
)

SHAPE: dict[str, Any] = {
    "vocab_size": 300,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "initializer_range": 0.1,
}
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}
VARIANTS: dict[str, tuple[type, type, dict[str, Any]]] = {
    "llama3-rope": (LlamaConfig, LlamaForCausalLM, {"rope_parameters": LLAMA3_ROPE}),
    "llama-linear-rope": (
        LlamaConfig,
        LlamaForCausalLM,
        {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}},
    ),
    "qwen2-bias-tied": (Qwen2Config, Qwen2ForCausalLM, {"tie_word_embeddings": True}),
    "qwen3-qk-norm": (Qwen3Config, Qwen3ForCausalLM, {"head_dim": 32}),
    "mistral": (MistralConfig, MistralForCausalLM, {"sliding_window": None}),
}


def _save_variant(name: str, directory: Path) -> Any:
    config_cls, model_cls, extra = VARIANTS[name]
    torch.manual_seed(0)
    model = model_cls(config_cls(**SHAPE, **extra)).eval()
    if name.startswith("qwen2"):  # random-init biases are zero: make them count
        with torch.no_grad():
            for layer in model.model.layers:
                layer.self_attn.q_proj.bias.normal_(0, 0.5)
                layer.self_attn.k_proj.bias.normal_(0, 0.5)
    model.save_pretrained(directory, safe_serialization=True)
    return model


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_logits_match_transformers(name: str, tmp_path: Path) -> None:
    reference = _save_variant(name, tmp_path)
    runner = fp32_runner(tmp_path, kv_bytes=1 << 20)
    ids = torch.randint(0, 300, (100,), generator=torch.Generator().manual_seed(1)).tolist()
    got = prefill_logits(runner, ids, list(range(7)))
    torch.testing.assert_close(got, hf_logits(reference, ids), atol=1e-4, rtol=0)


# GGUF imports: every storage type against transformers loading the same file. K-quant
# tensors hold random blocks, so this checks that both read the blocks alike and that the
# import undid GGUF's layout (names, q/k row order, untied head).
GGUF_TYPES = {
    0: {"attn_q": Q.Q4_K, "attn_k": Q.Q5_K, "attn_v": Q.Q6_K, "attn_output": Q.Q2_K},
    1: {"attn_q": Q.F16, "attn_k": Q.BF16, "attn_v": Q.Q4_0, "attn_output": Q.Q4_1},
}
GGUF_TYPES[0] |= {"ffn_gate": Q.Q3_K, "ffn_up": Q.Q4_1, "ffn_down": Q.Q4_0}
GGUF_TYPES[1] |= {"ffn_gate": Q.Q6_K, "ffn_up": Q.Q4_K, "ffn_down": Q.Q5_K}
GLOBAL_TYPES = {"token_embd.weight": Q.Q8_0, "output.weight": Q.Q6_K}


def _gguf_type(name: str) -> Q:
    if not name.startswith("blk."):
        return GLOBAL_TYPES.get(name, Q.F32)
    _, layer, part, _ = name.split(".")
    return GGUF_TYPES[int(layer)][part]


def _gguf_pair(tmp_path: Path, tokenizer_dir: Path, type_for: TypeFor) -> tuple[Path, Any]:
    """(our imported directory, transformers' model from the same GGUF file)."""
    shape = TinyLlama()
    path = write_llama_gguf(
        tmp_path / "m.gguf", random_llama(shape), shape, tokenizer_dir, type_for=type_for
    )
    directory = resolve_source(f"gguf:{path}", cache=tmp_path / "cache")
    reference: Any = AutoModelForCausalLM.from_pretrained(
        tmp_path, gguf_file=path.name, dtype=torch.float32
    )
    return directory, reference.eval()


def test_gguf_storage_types_match_transformers(tmp_path: Path, tiny_model_dir: Path) -> None:
    directory, reference = _gguf_pair(tmp_path, tiny_model_dir, _gguf_type)
    runner = fp32_runner(directory, kv_bytes=1 << 20)
    ids = torch.randint(0, 4096, (60,), generator=torch.Generator().manual_seed(2)).tolist()
    got = prefill_logits(runner, ids, list(range(4)))
    torch.testing.assert_close(got, hf_logits(reference, ids), atol=1e-4, rtol=0)


def test_q8_0_gguf_runs_on_the_int8_path(tmp_path: Path, tiny_model_dir: Path) -> None:
    directory, reference = _gguf_pair(tmp_path, tiny_model_dir, lambda name: Q.Q8_0)
    runner = fp32_runner(directory, kv_bytes=1 << 20)  # quantization "none": the file decides
    layer: Any = runner.model.layers[0]
    assert all(isinstance(m, Int8Linear) for m in (layer.attn.qkv, layer.attn.o, layer.mlp.down))
    ids = torch.randint(0, 4096, (60,), generator=torch.Generator().manual_seed(2)).tolist()
    got, expected = prefill_logits(runner, ids, list(range(4))), hf_logits(reference, ids)
    # one scale per row instead of per block of 32: close, not identical (random weights give
    # near ties, so top-1 agreement says little here; the SmolLM2 tests cover real text)
    assert float(F.cosine_similarity(got, expected, dim=-1).min()) > 0.999
    assert float((got - expected).norm() / expected.norm()) < 0.05


def test_int8_and_float_projections_cannot_share_a_layer(tiny_model_dir: Path) -> None:
    weights = dict(load_file(str(tiny_model_dir / "model.safetensors")))
    name = "model.layers.0.self_attn.q_proj.weight"
    weights[name], weights[f"{name}_scale"] = quantize_per_channel(weights[name])
    config = read_model_config(tiny_model_dir)
    with pytest.raises(ValueError, match="int8 and float weights cannot share one layer"):
        LlamaModel(config, weights, 64, torch.float32)


def test_gguf_llama3_rope_factors_match_transformers(tmp_path: Path, tiny_model_dir: Path) -> None:
    # A Llama 3.1-style model: its GGUF keeps only the per-frequency factors (rope_freqs);
    # the import must recover rope_scaling from them. The reference is the original HF model.
    rope = {"factor": 8.0, "low": 1.0, "high": 4.0, "original_max_position_embeddings": 64}
    shape = TinyLlama(rope_theta=500000.0)
    shape = dataclasses.replace(shape, rope_factors=llama3_rope_factors(shape, rope))
    config = LlamaConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        max_position_embeddings=512,
        rope_parameters={**LLAMA3_ROPE, "original_max_position_embeddings": 64},
    )
    torch.manual_seed(0)
    reference: Any = LlamaForCausalLM(config)
    reference.eval()
    weights = {name: t.detach() for name, t in reference.state_dict().items()}
    path = write_llama_gguf(tmp_path / "m.gguf", weights, shape, tiny_model_dir)
    directory = resolve_source(f"gguf:{path}", cache=tmp_path / "cache")
    runner = fp32_runner(directory, kv_bytes=1 << 20)
    assert runner.model.config.rope.kind == "llama3"
    ids = torch.randint(0, 4096, (200,), generator=torch.Generator().manual_seed(3)).tolist()
    got = prefill_logits(runner, ids, list(range(13)))
    torch.testing.assert_close(got, hf_logits(reference, ids), atol=1e-4, rtol=0)
