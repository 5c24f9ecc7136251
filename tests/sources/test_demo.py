import hashlib
import json
from pathlib import Path
from typing import Any, cast

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from inferplane.sources.demo import PRESETS, parameter_count, weight_shapes, write_demo_model


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_same_seed_same_bytes(tmp_path: Path, tiny_model_dir: Path) -> None:
    again = write_demo_model(tmp_path / "again", "tiny", seed=0)
    assert digest(again) == digest(tiny_model_dir)


def test_other_seed_other_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    other = write_demo_model(tmp_path / "other", "tiny", seed=1)
    assert digest(other)["model.safetensors"] != digest(tiny_model_dir)["model.safetensors"]
    assert digest(other)["config.json"] == digest(tiny_model_dir)["config.json"]


def test_hf_layout(tiny_model_dir: Path) -> None:
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert names == {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "chat_template" in json.loads((tiny_model_dir / "tokenizer_config.json").read_text())


def test_weights_have_declared_shapes(tiny_model_dir: Path) -> None:
    weights = load_file(str(tiny_model_dir / "model.safetensors"))
    expected = weight_shapes(PRESETS["tiny"])
    assert {name: tuple(t.shape) for name, t in weights.items()} == expected


def test_parameter_counts() -> None:
    assert 2e6 < parameter_count(PRESETS["tiny"]) < 10e6
    assert 350e6 < parameter_count(PRESETS["small"]) < 400e6


def test_small_has_qwen_like_shapes() -> None:
    small = PRESETS["small"]
    assert (small.hidden_size, small.num_hidden_layers) == (896, 24)
    assert (small.num_attention_heads, small.num_key_value_heads) == (14, 2)
    assert small.intermediate_size == 4864


def test_transformers_loads_and_generates(tiny_model_dir: Path) -> None:
    loaded = AutoModelForCausalLM.from_pretrained(tiny_model_dir, output_loading_info=True)
    model, info = cast(tuple[Any, dict[str, set[str]]], loaded)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tokenizer("The scheduler gives", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=12, do_sample=False)
    new = out[0, ids.shape[1] :]
    assert new.numel() == 12
    assert len(set(new.tolist())) > 3, "random weights should not collapse onto one token"


def test_chat_template_renders(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("text", ["Café naïve", "日本語のテキスト", "🚀 launch ✅", "plain ascii"])
def test_tokenizer_round_trips_unicode(tiny_model_dir: Path, text: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert tokenizer.decode(tokenizer(text).input_ids) == text


def test_weights_are_float32_for_tiny(tiny_model_dir: Path) -> None:
    weights = load_file(str(tiny_model_dir / "model.safetensors"))
    assert all(t.dtype == torch.float32 for t in weights.values())
