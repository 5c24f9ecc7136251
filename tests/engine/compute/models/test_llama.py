"""Model variants built by transformers (random init), saved as safetensors, loaded by ours."""

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from tests.engine.reference import fp32_runner, hf_logits, prefill_logits

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
