"""Importing a GGUF file into the cache: once, atomically, under a lock, with a progress bar."""

import json
import os
import threading
from pathlib import Path

import pytest

from inferplane.engine.compute.loader import checkpoint_files, read_model_config
from inferplane.sources import SourceError
from inferplane.sources.gguf_import import gguf_model_dir, import_gguf
from tests.sources.gguf_files import Q, TinyLlama, random_llama, write_llama_gguf

SHAPE = TinyLlama()


@pytest.fixture
def gguf_file(tmp_path: Path, tiny_model_dir: Path) -> Path:
    return write_llama_gguf(tmp_path / "tiny.gguf", random_llama(SHAPE), SHAPE, tiny_model_dir)


def test_first_use_imports_then_the_cache_is_reused(gguf_file: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = gguf_model_dir(gguf_file, cache, progress=False)
    for name in ("config.json", "generation_config.json", "tokenizer.json", "import.json"):
        assert (first / name).is_file(), name
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    again = gguf_model_dir(gguf_file, cache, progress=False)
    assert again == first and (again / "model.safetensors").stat().st_mtime_ns == stamp
    record = json.loads((first / "import.json").read_text(encoding="utf-8"))
    assert record["source"] == str(gguf_file) and record["seconds"] > 0
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_a_changed_file_is_imported_again(gguf_file: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = gguf_model_dir(gguf_file, cache, progress=False)
    stat = gguf_file.stat()  # a replaced file: same bytes, a new modification time
    os.utime(gguf_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert gguf_model_dir(gguf_file, cache, progress=False) != first


def test_processes_starting_at_once_share_one_import(gguf_file: Path, tmp_path: Path) -> None:
    cache, results = tmp_path / "cache", []
    threads = [
        threading.Thread(target=lambda: results.append(gguf_model_dir(gguf_file, cache, False)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 3 and len(set(results)) == 1
    assert [p.name for p in (cache / "gguf").iterdir() if p.is_dir()] == [results[0].name]


def test_the_engine_reads_the_imported_directory(gguf_file: Path, tmp_path: Path) -> None:
    directory = gguf_model_dir(gguf_file, tmp_path / "cache", progress=False)
    config = read_model_config(directory)
    assert (config.num_layers, config.num_heads, config.num_kv_heads) == (2, 4, 2)
    assert config.tie_word_embeddings is False and config.torch_dtype == "float32"
    assert checkpoint_files(directory) == [directory / "model.safetensors"]


def test_large_checkpoints_are_sharded(
    gguf_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("inferplane.sources.gguf_import.SHARD_BYTES", 1 << 20)
    out = tmp_path / "hf"
    out.mkdir()
    import_gguf(gguf_file, out, progress=False)
    shards = checkpoint_files(out)
    assert len(shards) > 1 and (out / "model.safetensors.index.json").is_file()


def test_float16_files_run_in_float16(tmp_path: Path, tiny_model_dir: Path) -> None:
    path = write_llama_gguf(
        tmp_path / "f16.gguf", random_llama(SHAPE), SHAPE, tiny_model_dir, type_for=lambda n: Q.F16
    )
    directory = gguf_model_dir(path, tmp_path / "cache", progress=False)
    assert read_model_config(directory).torch_dtype == "float16"


def test_progress_bar_names_the_file(
    gguf_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gguf_model_dir(gguf_file, tmp_path / "cache")
    assert "importing tiny.gguf" in capsys.readouterr().err


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        gguf_model_dir(tmp_path / "absent.gguf", tmp_path / "cache")


def test_a_failed_import_leaves_nothing_behind(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF but not really")
    with pytest.raises(SourceError):
        gguf_model_dir(bad, tmp_path / "cache", progress=False)
    assert not [p for p in (tmp_path / "cache" / "gguf").iterdir() if p.is_dir()]
