"""Value-bound expressions: one object tree renders both as a Helm template and as manifests.

A chart object is a tree of dicts, lists and scalars whose leaves may be expressions: a
reference into the chart's values (`V`), a string formatted from values (`Fmt`), a map merged
over a value (`Merge`), a file shipped in the chart (`File`) or the release namespace
(`Namespace`). `resolve` evaluates them against a values dict (what `--format manifests`
writes); `helm_yaml` writes the tree as YAML in which each expression is a Go template action
ending in `toJson`, so Helm renders the same value (JSON is YAML for scalars, lists and maps).
"""

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLACEHOLDER = re.compile(r"__expr_(\d+)__")
_BRACES = re.compile(r"\{\{|\}\}")


@dataclass(frozen=True)
class Context:
    """What an expression is evaluated against: the values, the namespace, the chart files."""

    values: Mapping[str, Any]
    namespace: str
    read_file: Callable[[str], str]


@dataclass(frozen=True)
class V:
    """A value at a dotted path of values.yaml."""

    path: tuple[str, ...]

    def go(self) -> str:
        expr = ".Values"
        for key in self.path:
            expr = f"{expr}.{key}" if _IDENT.match(key) else f"(index {expr} {json.dumps(key)})"
        return expr

    def evaluate(self, context: Context) -> Any:
        node: Any = context.values
        for key in self.path:
            node = node[key]
        return node


def v(*path: str) -> V:
    return V(tuple(path))


@dataclass(frozen=True)
class Fmt:
    """A string joined from literal parts and values (`printf "%v"` in Helm)."""

    parts: tuple[str | V, ...]

    def go(self) -> str:
        pattern = "".join(p.replace("%", "%%") if isinstance(p, str) else "%v" for p in self.parts)
        args = " ".join(p.go() for p in self.parts if isinstance(p, V))
        return f"printf {json.dumps(pattern)} {args}".rstrip()

    def evaluate(self, context: Context) -> str:
        return "".join(
            p if isinstance(p, str) else _go_text(p.evaluate(context)) for p in self.parts
        )


@dataclass(frozen=True)
class Merge:
    """Fixed string keys merged over a map from the values (the fixed keys win)."""

    fixed: tuple[tuple[str, str], ...]
    value: V

    def go(self) -> str:
        pairs = " ".join(f"{json.dumps(k)} {json.dumps(val)}" for k, val in self.fixed)
        return f"merge (dict {pairs}) {self.value.go()}"

    def evaluate(self, context: Context) -> dict[str, Any]:
        return {**self.value.evaluate(context), **dict(self.fixed)}


def merge(fixed: Mapping[str, str], value: V) -> Merge:
    return Merge(tuple(fixed.items()), value)


@dataclass(frozen=True)
class File:
    """A file shipped in the chart's files/ folder, as text or parsed as YAML."""

    name: str
    parse_yaml: bool = False

    def go(self) -> str:
        read = f".Files.Get {json.dumps('files/' + self.name)}"
        return f"{read} | fromYaml" if self.parse_yaml else read

    def evaluate(self, context: Context) -> Any:
        text = context.read_file(self.name)
        return yaml.safe_load(text) if self.parse_yaml else text


@dataclass(frozen=True)
class Namespace:
    """The namespace the chart is installed in."""

    def go(self) -> str:
        return ".Release.Namespace"

    def evaluate(self, context: Context) -> str:
        return context.namespace


Expr = V | Fmt | Merge | File | Namespace
EXPRESSIONS = (V, Fmt, Merge, File, Namespace)


def _go_text(value: Any) -> str:
    """What Go's %v prints for a YAML scalar (booleans lower-case, whole floats bare)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def resolve(node: Any, context: Context) -> Any:
    """The tree with every expression replaced by its value."""
    if isinstance(node, EXPRESSIONS):
        return node.evaluate(context)
    if isinstance(node, dict):
        return {key: resolve(value, context) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [resolve(item, context) for item in node]
    return node


def helm_yaml(node: Any) -> str:
    """The tree as YAML for a Helm template: expressions become `{{ ... | toJson }}` actions;
    literal braces in strings are escaped so Helm prints them as they are."""
    actions: list[str] = []

    def mark(item: Any) -> Any:
        if isinstance(item, EXPRESSIONS):
            actions.append(f"{{{{ {item.go()} | toJson }}}}")
            return f"__expr_{len(actions) - 1}__"
        if isinstance(item, dict):
            return {key: mark(value) for key, value in item.items()}
        if isinstance(item, list | tuple):
            return [mark(value) for value in item]
        if isinstance(item, str):
            return _BRACES.sub(lambda m: "{{`" + m.group() + "`}}", item)
        return item

    text = dump(mark(node))
    return _PLACEHOLDER.sub(lambda m: actions[int(m.group(1))], text)


def dump(node: Any) -> str:
    return yaml.safe_dump(node, sort_keys=False, width=10_000, allow_unicode=True)
