"""Importing a GGUF file into the model cache as a Hugging Face model directory.

The first use of a GGUF file converts it once (config.json, generation_config.json,
tokenizer.json, tokenizer_config.json with the chat template, safetensors weights) with a
progress bar; every later start finds the directory and loads it memory-mapped, as any HF
directory. The cache key is the file's path, size and modification time, so a replaced file
is imported again. Processes starting at once (replicas of one fleet) take a file lock: one
imports, the others wait and reuse its result. The directory is built beside its final place
and renamed into it, so a crash never leaves a half-written model behind.
"""

import contextlib
import fcntl
import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from gguf import GGMLQuantizationType, ReaderTensor
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors.torch import save_file

from inferplane.sources.errors import SourceError
from inferplane.sources.gguf_meta import (
    GgufFile,
    LlamaShape,
    check_architecture,
    generation_config,
    hf_config,
    llama_shape,
)
from inferplane.sources.gguf_tensors import FLOAT_TYPES, check_types, convert, int8_tensors
from inferplane.sources.gguf_tokenizer import write_tokenizer

# Bump when the imported directory's layout changes: older imports are then redone.
IMPORT_FORMAT = 1
SHARD_BYTES = 2 << 30  # bounds the memory an import holds, and each safetensors file
_DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}

log = logging.getLogger(__name__)


def gguf_model_dir(path: Path, cache: Path, progress: bool = True) -> Path:
    """The HF directory for this GGUF file, importing it into `cache` on first use."""
    path = path.expanduser().resolve()
    if not path.is_file():
        raise SourceError(f"GGUF file {path} does not exist")
    target = cache / "gguf" / cache_key(path)
    if _complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.with_suffix(".lock")):
        if not _complete(target):
            _import_into(path, target, progress)
    return target


def cache_key(path: Path) -> str:
    stat = path.stat()
    identity = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{IMPORT_FORMAT}"
    return f"{path.stem}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def _complete(directory: Path) -> bool:
    return (directory / "import.json").is_file()


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _import_into(path: Path, target: Path, progress: bool) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        started = time.perf_counter()
        import_gguf(path, staging, progress)
        seconds = time.perf_counter() - started
        _write_json(staging / "import.json", _import_record(path, seconds))
        staging.rename(target)
        log.info("imported %s into %s in %.1f s", path, target, seconds)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def import_gguf(path: Path, directory: Path, progress: bool = True) -> None:
    """Write the HF directory for a Llama-architecture GGUF file into `directory`."""
    gguf = GgufFile.open(path)
    check_architecture(gguf)
    check_types(gguf.tensors)
    write_tokenizer(gguf, directory)
    dtype = write_weights(gguf, directory, progress)
    _write_json(directory / "config.json", hf_config(gguf, dtype))
    _write_json(directory / "generation_config.json", generation_config(gguf))


def write_weights(gguf: GgufFile, directory: Path, progress: bool = True) -> str:
    """Convert every tensor into safetensors shards; return the checkpoint's float dtype."""
    shape = llama_shape(gguf)
    int8 = int8_tensors(gguf.tensors)
    shards: list[dict[str, torch.Tensor]] = [{}]
    with _progress_bar(gguf, progress) as advance:
        for tensor in gguf.tensors:
            _add(shards, _converted(tensor, shape, tensor.name in int8))
            advance(int(tensor.n_bytes))
    _save_shards(shards, directory)
    return _checkpoint_dtype(gguf)


def _converted(tensor: ReaderTensor, shape: LlamaShape, int8: bool) -> dict[str, torch.Tensor]:
    return dict(convert(tensor, shape, int8))


def _add(shards: list[dict[str, torch.Tensor]], tensors: dict[str, torch.Tensor]) -> None:
    if _bytes(shards[-1]) >= SHARD_BYTES:
        shards.append({})
    shards[-1].update(tensors)


def _bytes(tensors: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _save_shards(shards: list[dict[str, torch.Tensor]], directory: Path) -> None:
    metadata = {"format": "pt"}
    if len(shards) == 1:
        save_file(shards[0], str(directory / "model.safetensors"), metadata=metadata)
        return
    weight_map: dict[str, str] = {}
    for index, shard in enumerate(shards, start=1):
        name = f"model-{index:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(directory / name), metadata=metadata)
        weight_map |= dict.fromkeys(shard, name)
    total = sum(_bytes(shard) for shard in shards)
    index_data = {"metadata": {"total_size": total}, "weight_map": weight_map}
    _write_json(directory / "model.safetensors.index.json", index_data)


def _checkpoint_dtype(gguf: GgufFile) -> str:
    """The embedding's stored dtype: float16 / bfloat16 files run in it, quantized ones in
    float32 (the dtype their blocks dequantize to exactly)."""
    embedding = next(t for t in gguf.tensors if t.name == "token_embd.weight")
    kind: GGMLQuantizationType = embedding.tensor_type
    return _DTYPE_NAMES[FLOAT_TYPES.get(kind, torch.float32)]


@contextlib.contextmanager
def _progress_bar(gguf: GgufFile, show: bool) -> Iterator[Any]:
    total = sum(int(t.n_bytes) for t in gguf.tensors)
    columns = (
        TextColumn("[bold]importing {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    console = Console(stderr=True)
    with Progress(*columns, console=console, disable=not show) as bar:
        task = bar.add_task(gguf.path.name, total=total)
        yield lambda done: bar.advance(task, done)


def _import_record(path: Path, seconds: float) -> dict[str, Any]:
    stat = path.stat()
    return {
        "source": str(path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "format": IMPORT_FORMAT,
        "seconds": round(seconds, 3),
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
