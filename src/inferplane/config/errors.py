"""Configuration errors that name the exact path in the file and what to change."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import get_close_matches

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a fleet file: a dotted path (`pools.chat.replicas`) and advice."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ValueError):
    """Raised when a fleet file is invalid; carries every issue found, not just the first."""

    def __init__(self, source: str, issues: Sequence[ConfigIssue]) -> None:
        self.source = source
        self.issues = tuple(issues)
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(f"{source} is not a valid fleet file:\n{lines}")


def format_path(loc: Iterable[int | str]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(f".{item}" if parts else item)
    return "".join(parts)


def issues_from_validation(error: ValidationError, root: type[BaseModel]) -> list[ConfigIssue]:
    return [_issue_from_detail(detail, root) for detail in error.errors()]


def _issue_from_detail(detail: ErrorDetails, root: type[BaseModel]) -> ConfigIssue:
    loc = [part for part in detail["loc"] if not _is_union_tag(part)]
    path = format_path(loc)
    if detail["type"] == "extra_forbidden":
        return ConfigIssue(path, _unknown_field_advice(root, loc))
    message = detail["msg"].removeprefix("Value error, ")
    if detail["type"] == "literal_error":
        message = f"got {detail['input']!r}; {message[0].lower()}{message[1:]}"
    return ConfigIssue(path, message)


def _is_union_tag(part: int | str) -> bool:
    # pydantic inserts type names such as "function-after[...]" into locations of unions
    return isinstance(part, str) and ("[" in part or part in {"str", "float", "int"})


def _unknown_field_advice(root: type[BaseModel], loc: Sequence[int | str]) -> str:
    allowed = _fields_at(root, loc[:-1])
    name = str(loc[-1])
    if not allowed:
        return "unknown field"
    close = get_close_matches(name, allowed, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown field; {hint}allowed: {', '.join(sorted(allowed))}"


def _fields_at(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """Walk the schema along a location to list the fields allowed there."""
    current: object = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _step(current: object, part: int | str) -> object:
    if isinstance(current, type) and issubclass(current, BaseModel):
        field = current.model_fields.get(str(part))
        return _unwrap(field.annotation) if field else None
    args = getattr(current, "__args__", ())
    return _unwrap(args[-1]) if args else None


def _unwrap(annotation: object) -> object:
    """Strip Optional[...] so a walk can continue into the model it holds."""
    args = [arg for arg in getattr(annotation, "__args__", ()) if arg is not type(None)]
    origin = getattr(annotation, "__origin__", None)
    if origin is None and len(args) == 1:
        return args[0]
    return annotation
