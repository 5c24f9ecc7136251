"""The usage record: one row per request (or per stretch of idle replica time) in the ledger.

Cost is kept in integer micro-dollars so that sums are exact: the books close, request costs
plus idle costs equal GPU-hours x price. Users are stored only as a salted hash.
"""

import hashlib
from dataclasses import dataclass, fields
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
        # A shallow copy: every field is a scalar, and asdict's deep copy costs ~10x more on
        # the gateway's accounting path.
        return {name: getattr(self, name) for name in _FIELD_NAMES}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UsageRecord":
        """Build a record from a dict such as to_dict() gives; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in data.items() if name in known})


_FIELD_NAMES = tuple(f.name for f in fields(UsageRecord))


def hash_user(user: str, salt: str) -> str:
    """A stable pseudonym for a user id: the ledger never stores the raw id."""
    if not user:
        return ""
    digest = hashlib.blake2b(user.encode(), key=salt.encode()[:64], digest_size=16)
    return digest.hexdigest()


def idle_request_id(replica: str, start_us: int) -> str:
    """The id of an idle row: stable, so replaying the same stretch stores it once."""
    return f"idle:{replica}:{start_us}"
