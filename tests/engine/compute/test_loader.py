"""Reading configs and checkpoints: model types, rope layouts, dtypes, tied heads, pickles."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from inferplane.engine.compute.cpu_features import CpuFeatures, cpu_features, parse_override
from inferplane.engine.compute.cpu_kernels import cpu_kernels
from inferplane.engine.compute.dtype_auto import auto_cpu_dtype
from inferplane.engine.compute.loader import (
    checkpoint_files,
    read_eos_token_ids,
    read_model_config,
    resolve_dtype,
)
from tests.engine.reference import fp32_runner, hf_logits, hf_model, prefill_logits


def _copy_with_config(source: Path, target: Path, **changes: object) -> Path:
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    config.update(changes)
    (target / "config.json").write_text(json.dumps(config))
    return target


def test_reads_the_tiny_config(tiny_model_dir: Path) -> None:
    config = read_model_config(tiny_model_dir)
    assert (config.model_type, config.num_layers, config.num_kv_heads) == ("llama", 4, 4)
    assert config.head_dim == 32
    assert config.rope.kind == "default"
    assert read_eos_token_ids(tiny_model_dir) == (2, 0)


def test_refuses_pickle_checkpoints(tmp_path: Path) -> None:
    (tmp_path / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(ValueError, match=r"pytorch_model\.bin.*convert it to safetensors"):
        checkpoint_files(tmp_path)


def test_refuses_unknown_model_types(tiny_model_dir: Path, tmp_path: Path) -> None:
    target = _copy_with_config(tiny_model_dir, tmp_path / "m", model_type="gpt2")
    with pytest.raises(ValueError, match="gpt2"):
        read_model_config(target)


def test_reads_the_older_rope_scaling_layout(tiny_model_dir: Path, tmp_path: Path) -> None:
    scaling = {"type": "linear", "factor": 4.0}
    target = _copy_with_config(tiny_model_dir, tmp_path / "m", rope_scaling=scaling, rope_theta=5e5)
    rope = read_model_config(target).rope
    assert (rope.kind, rope.factor, rope.theta) == ("linear", 4.0, 5e5)


def test_refuses_unsupported_rope_scaling(tiny_model_dir: Path, tmp_path: Path) -> None:
    scaling = {"rope_type": "dynamic", "factor": 2.0}
    target = _copy_with_config(tiny_model_dir, tmp_path / "m", rope_scaling=scaling)
    with pytest.raises(ValueError, match="dynamic"):
        read_model_config(target)


def test_auto_dtype_is_the_hosts_choice(tiny_model_dir: Path) -> None:
    config = read_model_config(tiny_model_dir)  # a float32 checkpoint
    half = type(config)(**{**config.__dict__, "torch_dtype": "float16"})
    native = CpuFeatures("x86_64", "AVX512", parse_override("x86-64-v4,avx512_bf16"))
    avx2 = CpuFeatures("x86_64", "AVX2", parse_override("x86-64-v3"))
    arm = CpuFeatures("aarch64", "DEFAULT", frozenset())
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_dtype("auto", config, cpu, native) == torch.bfloat16
    kernels = cpu_kernels() is not None
    avx2_choice = torch.float16 if kernels else torch.float32  # see test_dtype_auto
    assert resolve_dtype("auto", half, cpu, avx2) == avx2_choice
    assert resolve_dtype("auto", half, cpu, arm) == torch.bfloat16
    assert resolve_dtype("auto", half, cuda, native) == torch.float16
    assert resolve_dtype("bfloat16", config, cpu, avx2) == torch.bfloat16
    detected = auto_cpu_dtype(cpu_features(), torch.float32, kernels)
    assert resolve_dtype("auto", config, cpu) == detected


def test_tied_embeddings_match_transformers(tiny_model_dir: Path, tmp_path: Path) -> None:
    target = _copy_with_config(tiny_model_dir, tmp_path / "tied", tie_word_embeddings=True)
    weights = load_file(target / "model.safetensors")
    del weights["lm_head.weight"]
    save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})
    runner = fp32_runner(target, kv_bytes=1 << 20)
    ids = list(range(3, 40))
    got = prefill_logits(runner, ids, [0, 1, 2])
    torch.testing.assert_close(got, hf_logits(hf_model(target), ids), atol=1e-4, rtol=0)


def test_untied_head_missing_is_an_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    target = _copy_with_config(tiny_model_dir, tmp_path / "m")
    weights = load_file(target / "model.safetensors")
    del weights["lm_head.weight"]
    save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="tie_word_embeddings"):
        fp32_runner(target)


def test_follows_the_shard_index(tmp_path: Path) -> None:
    for name in ("a.safetensors", "b.safetensors", "consolidated.safetensors"):
        save_file({"x": torch.zeros(1)}, str(tmp_path / name))
    index = {"weight_map": {"w1": "b.safetensors", "w2": "a.safetensors", "w3": "a.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    assert [p.name for p in checkpoint_files(tmp_path)] == ["a.safetensors", "b.safetensors"]
