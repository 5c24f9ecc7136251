import os
from pathlib import Path

import pytest

from inferplane.sources import SourceError, cache_dir, resolve_source


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


def test_local_directory(tiny_model_dir: Path) -> None:
    assert resolve_source(str(tiny_model_dir)) == tiny_model_dir


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("demo:huge", "unknown demo preset"),
        ("package:no_such_package_here", "not installed"),
        ("package:json", "carries no model"),
        ("/definitely/not/here", "does not exist"),
    ],
)
def test_bad_sources_say_why(source: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        resolve_source(source)


def test_directory_without_config(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no config\.json"):
        resolve_source(str(tmp_path))
