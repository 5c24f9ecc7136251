"""Reading a fleet file from YAML into a validated FleetConfig."""

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from inferplane.config.errors import ConfigError, ConfigIssue, issues_from_validation
from inferplane.config.references import check_references
from inferplane.config.schema import FleetConfig


def load_fleet(path: str | Path) -> FleetConfig:
    """Load and validate a fleet file; raise ConfigError listing every problem."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(str(file), [ConfigIssue("", f"cannot read file: {error}")]) from error
    return parse_fleet(text, source=str(file))


def parse_fleet(text: str, source: str = "<fleet>") -> FleetConfig:
    data = _parse_yaml(text, source)
    try:
        fleet = FleetConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(source, issues_from_validation(error, FleetConfig)) from error
    issues = check_references(fleet)
    if issues:
        raise ConfigError(source, issues)
    return fleet


def _parse_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(source, [ConfigIssue("", f"{where}invalid YAML: {problem}")]) from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigIssue("", "the top level must be a mapping of sections")])
    return data
