"""GGUF metadata -> config.json and generation_config.json for a Llama model."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter

from inferplane.sources import SourceError
from inferplane.sources.gguf_meta import (
    GgufFile,
    eos_token_ids,
    hf_config,
    llama3_rope,
    llama_shape,
)
from tests.sources.gguf_files import TinyLlama, llama3_rope_factors

Extra = Callable[[GGUFWriter], None]


def _write(path: Path, extra: Extra = lambda w: None, arch: str = "llama", **tensors: int) -> Path:
    """A metadata-heavy file: SmolLM2-like shape, three tokens, the named 1-D tensors."""
    writer = GGUFWriter(path, arch=arch)
    writer.add_context_length(8192)
    writer.add_embedding_length(576)
    writer.add_block_count(30)
    writer.add_feed_forward_length(1536)
    writer.add_head_count(9)
    writer.add_head_count_kv(3)
    writer.add_rope_dimension_count(64)
    writer.add_rope_freq_base(100000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    extra(writer)
    for name, size in {"token_embd.weight": 4, **tensors}.items():
        writer.add_tensor(name.replace("__", "."), np.zeros(size, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_config_has_the_model_shape(tmp_path: Path) -> None:
    gguf = GgufFile.open(_write(tmp_path / "m.gguf"))
    config = hf_config(gguf, "float32")
    assert config["model_type"] == "llama"
    assert config["hidden_size"] == 576 and config["intermediate_size"] == 1536
    assert config["num_hidden_layers"] == 30
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (9, 3)
    assert config["head_dim"] == 64
    assert config["rope_theta"] == 100000.0 and config["rope_scaling"] is None
    assert config["max_position_embeddings"] == 8192
    assert config["vocab_size"] == 3  # no vocab_size key: the token list's length
    assert config["tie_word_embeddings"] is True  # no output.weight
    assert config["torch_dtype"] == "float32"
    assert llama_shape(gguf).num_kv_heads == 3


def test_untied_head_and_linear_rope_scaling(tmp_path: Path) -> None:
    def extra(writer: GGUFWriter) -> None:
        writer.add_string("llama.rope.scaling.type", "linear")
        writer.add_float32("llama.rope.scaling.factor", 4.0)

    config = hf_config(GgufFile.open(_write(tmp_path / "m.gguf", extra, output__weight=4)), "x")
    assert config["tie_word_embeddings"] is False
    assert config["rope_scaling"] == {"rope_type": "linear", "factor": 4.0}


def test_end_of_turn_tokens_count_as_eos(tmp_path: Path) -> None:
    def extra(writer: GGUFWriter) -> None:
        writer.add_uint32("tokenizer.ggml.eot_token_id", 1)

    assert eos_token_ids(GgufFile.open(_write(tmp_path / "m.gguf", extra))) == [2, 1]


def test_llama3_rope_factors_become_rope_scaling() -> None:
    # Llama 3.1 8B's factors as llama.cpp stores them: head_dim 128, theta 500000, factor 8
    shape = TinyLlama(hidden_size=512, num_heads=4, rope_theta=500000.0)
    rope = {"factor": 8.0, "low": 1.0, "high": 4.0, "original_max_position_embeddings": 8192}
    factors = np.array(llama3_rope_factors(shape, rope), dtype=np.float32)
    assert llama3_rope(factors, 500000.0, "m.gguf") == {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    factors[-1] = 3.0  # not what Llama 3's formula gives: refused, not guessed
    with pytest.raises(SourceError, match="does not follow"):
        llama3_rope(factors, 500000.0, "m.gguf")


@pytest.mark.parametrize(
    ("extra", "arch", "tensors", "message"),
    [
        (lambda w: None, "gemma", {}, "architecture 'gemma' is not supported"),
        (lambda w: w.add_rope_dimension_count(32), "llama", {}, "partial rotary"),
        (lambda w: None, "llama", {"rope_freqs__weight": 32}, "rope_freqs"),
        (lambda w: w.add_string("llama.rope.scaling.type", "yarn"), "llama", {}, "'yarn'"),
    ],
    ids=["architecture", "partial-rotary", "rope-freqs", "yarn"],
)
def test_unsupported_models_are_refused_with_the_reason(
    tmp_path: Path, extra: Extra, arch: str, tensors: dict[str, int], message: str
) -> None:
    gguf = GgufFile.open(_write(tmp_path / "m.gguf", extra, arch, **tensors))
    with pytest.raises(SourceError, match=message):
        hf_config(gguf, "float32")


def test_not_a_gguf_file(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"not a model")
    with pytest.raises(SourceError, match="not a readable GGUF file"):
        GgufFile.open(path)
