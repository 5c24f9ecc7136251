"""`--set KEY=VALUE` for manifests rendered without Helm: dotted paths into the values (a dot
inside a key written `\\.`), each value read as YAML (`3`, `true`, `[a, b]`, `{}`), the
result checked as Helm would check it against values.schema.json."""

import re
from collections.abc import Iterable
from typing import Any

import yaml

from inferplane.deploy.values import ChartValues

_UNESCAPED_DOT = re.compile(r"(?<!\\)\.")


def parse_set(item: str) -> tuple[list[str], Any]:
    """`a.b=VALUE` -> (["a", "b"], VALUE)."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ValueError(f"--set takes KEY=VALUE, e.g. image.tag=0.2.0; got {item!r}")
    path = [part.replace("\\.", ".") for part in _UNESCAPED_DOT.split(key)]
    if any(not part for part in path):
        raise ValueError(f"--set {item!r}: empty key segment")
    return path, yaml.safe_load(raw) if raw else ""


def apply_sets(values: dict[str, Any], sets: Iterable[str]) -> dict[str, Any]:
    """A copy of `values` with each `--set` applied, in order."""
    result: dict[str, Any] = yaml.safe_load(yaml.safe_dump(values))
    for item in sets:
        path, value = parse_set(item)
        node = result
        for key in path[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ValueError(f"--set {item!r}: {key} is not a map")
            node = child
        node[path[-1]] = value
    return result


def checked(values: dict[str, Any], pools: Iterable[str]) -> dict[str, Any]:
    """`values` if they fit the chart's schema (unknown keys and pools refused), else
    ValueError that says which key is wrong."""
    known = set(pools)
    unknown = sorted(set(values.get("pools", {})) - known)
    if unknown:
        raise ValueError(f"unknown pool {unknown[0]!r} in values: the fleet has {sorted(known)}")
    ChartValues.model_validate(values)
    return values
