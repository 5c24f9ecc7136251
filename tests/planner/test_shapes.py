import pytest

from inferplane.planner.shapes import ModelShape, preset_shapes, shape_from_config
from inferplane.sources.demo import PRESETS, hf_config, parameter_count


@pytest.mark.parametrize(
    ("name", "billions"),
    [
        ("llama-2-7b", 6.738),
        ("llama-2-70b", 68.977),
        ("llama-3-8b", 8.030),
        ("llama-3-70b", 70.554),
        ("mistral-7b", 7.242),
        ("qwen2.5-0.5b", 0.494),
        ("qwen2.5-7b", 7.616),
        ("qwen2.5-72b", 72.706),
    ],
)
def test_parameter_counts_match_published_sizes(name: str, billions: float) -> None:
    assert preset_shapes()[name].parameter_count / 1e9 == pytest.approx(billions, abs=0.001)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_parameter_count_matches_the_demo_checkpoints(preset: str) -> None:
    shape = shape_from_config(preset, hf_config(PRESETS[preset]))
    assert shape.parameter_count == parameter_count(PRESETS[preset])


def test_tied_embeddings_count_once() -> None:
    untied = preset_shapes()["qwen2.5-0.5b"]
    tied_count = untied.parameter_count
    assert untied.tie_word_embeddings
    separate = ModelShape("x", 151936, 896, 24, 14, 2, 4864, False, attention_bias=True)
    assert separate.parameter_count - tied_count == 151936 * 896


def test_config_defaults_kv_heads_to_heads_and_reads_qwen_bias() -> None:
    config = {
        "model_type": "qwen2",
        "vocab_size": 100,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
    }
    shape = shape_from_config("q", config)
    assert (shape.num_kv_heads, shape.head_dim, shape.attention_bias) == (4, 16, True)


def test_config_errors_give_advice() -> None:
    with pytest.raises(ValueError, match="hidden_size must be an integer"):
        shape_from_config("bad", {"num_attention_heads": 4, "hidden_size": "wide"})
    with pytest.raises(ValueError, match="multiple of num_kv_heads"):
        ModelShape("bad", 10, 64, 2, 4, 3, 128)
