"""API keys: the keys file, and who may call the gateway with which model.

Keys are stored only as "sha256:<hex>" of the secret; a presented key is hashed and looked up
by that hash, then confirmed with a constant-time comparison. Timing can reveal nothing useful:
what is looked up is a hash the caller cannot steer toward a stored one. Each key carries its
team, tier (for routing), allowed models (names or shell patterns such as "chat-*", "*" for
all), rate limits, an optional budget and an admin flag. Without a keys file the gateway runs
in dev mode: every request is the anonymous admin key.

Keys file:

    keys:
      - {name: alice, key_hash: "sha256:...", team: research, tier: premium,
         models: ["chat-*"], requests_per_minute: 60, tokens_per_minute: 100000,
         budget: {period: month, hard_usd: 50}}
    team_budgets:
      research: {period: month, soft_usd: 400, hard_usd: 500}
"""

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inferplane.config.errors import ConfigIssue, issues_from_validation
from inferplane.gateway.admission.refusal import Refusal, forbidden, unauthenticated
from inferplane.ledger.budgets import Budget

KEY_PREFIX = "ip-"
_HASH_PATTERN = r"^sha256:[0-9a-f]{64}$"


class KeysFileError(ValueError):
    """A keys file that cannot be used; lists every problem with its path in the file."""

    def __init__(self, source: str, issues: Iterable[ConfigIssue]) -> None:
        self.source, self.issues = source, tuple(issues)
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(f"{source} is not a valid keys file:\n{lines}")


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KeyBudget(_Entry):
    period: Literal["day", "month"] = "month"
    soft_usd: float | None = Field(default=None, ge=0)
    hard_usd: float | None = Field(default=None, ge=0)


class ApiKey(_Entry):
    """One key as the gateway knows it: never the secret, only its hash."""

    name: str = Field(min_length=1)
    key_hash: str = Field(pattern=_HASH_PATTERN)
    team: str = "default"
    tier: str = "standard"
    models: tuple[str, ...] = ("*",)
    admin: bool = False
    requests_per_minute: int | None = Field(default=None, gt=0)
    tokens_per_minute: int | None = Field(default=None, gt=0)
    budget: KeyBudget | None = None

    def allows_model(self, model: str) -> bool:
        return any(fnmatchcase(model, pattern) for pattern in self.models)


class KeysFile(_Entry):
    keys: tuple[ApiKey, ...] = ()
    team_budgets: dict[str, KeyBudget] = {}

    @model_validator(mode="after")
    def _unique(self) -> Self:
        for field in ("name", "key_hash"):
            values = [getattr(key, field) for key in self.keys]
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"each key needs its own {field}; repeated: {repeated}")
        return self

    def budgets(self) -> list[Budget]:
        """The budgets this file sets, for the ledger's BudgetBook."""
        found = [_budget("key", k.name, k.budget) for k in self.keys if k.budget is not None]
        found += [_budget("team", team, b) for team, b in self.team_budgets.items()]
        return found


ANONYMOUS = ApiKey(name="anonymous", key_hash="sha256:" + "0" * 64, admin=True)


def _budget(scope: Literal["key", "team"], name: str, budget: KeyBudget) -> Budget:
    return Budget(scope, name, budget.period, budget.soft_usd, budget.hard_usd)


def hash_key(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    """A fresh key to hand out once: 'ip-' and 43 URL-safe characters (256 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def bearer_token(authorization: str | None) -> str | None:
    """The key in an Authorization header value ("Bearer ip-..."), or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class KeyStore:
    """Looks presented keys up by hash; `KeyStore(None)` is dev mode (everyone is admin)."""

    def __init__(self, keys: Iterable[ApiKey] | None) -> None:
        self.dev_mode = keys is None
        self._by_hash = {key.key_hash: key for key in keys or ()}

    @classmethod
    def from_file(cls, path: str | Path | None) -> "KeyStore":
        return cls(None if path is None else load_keys(path).keys)

    def __len__(self) -> int:
        return len(self._by_hash)

    def authenticate(self, token: str | None) -> ApiKey | Refusal:
        """The key a bearer token belongs to, or a 401 refusal."""
        if self.dev_mode:
            return ANONYMOUS
        if not token:
            return unauthenticated(
                "You didn't provide an API key. Send it as 'Authorization: Bearer ip-...'."
            )
        presented = hash_key(token)
        key = self._by_hash.get(presented)
        if key is None or not hmac.compare_digest(key.key_hash, presented):
            return unauthenticated("Incorrect API key provided.")
        return key

    @staticmethod
    def authorize(key: ApiKey, model: str) -> Refusal | None:
        """None when the key may use the model, else a 403 refusal."""
        if key.admin or key.allows_model(model):
            return None
        allowed = ", ".join(key.models) or "none"
        return forbidden(f"key {key.name!r} may not use model {model!r} (allowed: {allowed})")


def parse_keys(text: str, source: str = "<keys>") -> KeysFile:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise KeysFileError(source, [ConfigIssue("", f"invalid YAML: {error}")]) from error
    if not isinstance(data, dict):
        raise KeysFileError(
            source, [ConfigIssue("", "the top level must be a mapping: keys: [...]")]
        )
    try:
        return KeysFile.model_validate(data)
    except ValidationError as error:
        raise KeysFileError(source, issues_from_validation(error, KeysFile)) from error


def load_keys(path: str | Path) -> KeysFile:
    """Read and validate a keys file; a missing file is an empty one (no key works yet)."""
    file = Path(path).expanduser()
    if not file.exists():
        return KeysFile()
    return parse_keys(file.read_text(encoding="utf-8"), source=str(file))


def save_keys(path: str | Path, keys: KeysFile) -> None:
    """Write the keys file readable by its owner only, replacing it in one step."""
    file = Path(path).expanduser()
    data = keys.model_dump(mode="json", exclude_defaults=True)
    temporary = file.with_name(f".{file.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        yaml.safe_dump(data, out, sort_keys=False)
    temporary.replace(file)
