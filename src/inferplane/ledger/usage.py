"""The usage record: one row per request (or per stretch of idle replica time) in the ledger.

Cost is kept in integer micro-dollars so that sums are exact: the books close, request costs
plus idle costs equal GPU-hours x price. Users are stored only as a salted hash.
"""

import hashlib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from decimal import Decimal
from typing import Any, Literal

RecordKind = Literal["request", "idle"]
MICRO = 1_000_000


@dataclass(frozen=True)
class UsageRecord:
    """What one request used and cost; `kind="idle"` rows carry a replica's unused GPU time."""

    time: float  # when the request (or idle stretch) started, Unix seconds
    request_id: str  # unique; writing the same id twice stores it once
    model: str
    pool: str
    replica: str
    gpu_type: str
    gpu_seconds: float  # busy GPU time attributed to this row (idle time for idle rows)
    cost_micro_usd: int
    kind: RecordKind = "request"
    key: str = ""  # the API key's name, never the secret
    team: str = ""
    user_hash: str = ""
    model_version: str = ""
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    duration_s: float = 0.0
    status: str = "ok"
    # The completion's confidence as the replica measured it (None: not reported).
    mean_logprob: float | None = None
    low_confidence_share: float | None = None
    # A digest of the request's body (ledger/regenerations.py); None: not recorded.
    prompt_hash: int | None = None

    def __post_init__(self) -> None:
        if not self.request_id:
            raise ValueError("a usage record needs a request_id (it makes writes idempotent)")
        if self.cost_micro_usd < 0 or self.gpu_seconds < 0:
            raise ValueError(f"record {self.request_id}: cost and gpu_seconds must be >= 0")

    @property
    def cost_usd(self) -> Decimal:
        return Decimal(self.cost_micro_usd) / MICRO

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        # A shallow copy: every field is a scalar (asdict's deep copy costs ~10x more).
        return {name: getattr(self, name) for name in ROW_FIELDS}

    def to_row(self) -> tuple[Any, ...]:
        """The record's values in ROW_FIELDS order: how the spool and the store carry it."""
        return tuple(getattr(self, name) for name in ROW_FIELDS)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UsageRecord":
        """Build a record from a dict such as to_dict() gives; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in data.items() if name in known})


ROW_FIELDS = tuple(f.name for f in fields(UsageRecord))
_DEFAULTS = {f.name: f.default for f in fields(UsageRecord) if f.default is not MISSING}


def row_from_dict(data: Mapping[str, Any]) -> tuple[Any, ...]:
    """A to_dict()-shaped mapping as a row (defaults filled in); KeyError names a field that
    has no default and is missing."""
    return tuple(data[name] if name in data else _DEFAULTS[name] for name in ROW_FIELDS)


def hash_user(user: str, salt: str) -> str:
    """A stable pseudonym for a user id: the ledger never stores the raw id."""
    if not user:
        return ""
    digest = hashlib.blake2b(user.encode(), key=salt.encode()[:64], digest_size=16)
    return digest.hexdigest()


def idle_request_id(replica: str, start_us: int) -> str:
    """The id of an idle row: stable, so replaying the same stretch stores it once."""
    return f"idle:{replica}:{start_us}"
