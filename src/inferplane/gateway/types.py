"""Shapes that cross the gateway's boundaries: what a request looks like to the rules and the
balancer, and what a replica looks like to them. Frozen and free of web types, so the
simulator can build them too."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

ReplicaState = Literal["starting", "ready", "draining", "sleeping", "failed"]
RequestTask = Literal["chat", "completion", "embedding"]


@dataclass(frozen=True)
class ReplicaSnapshot:
    """One replica as the balancer sees it at one moment.

    in_flight counts the gateway's own outstanding requests to it; waiting / running / kv_usage
    come from scraping its /metrics (vLLM names). outstanding_work is the gateway's estimate of
    prompt + max tokens still owed by the replica (for predicted_work). weight scales capacity
    (a bigger GPU gets more).
    """

    id: str
    pool: str
    model: str
    url: str
    state: ReplicaState = "ready"
    in_flight: int = 0
    waiting: int = 0
    running: int = 0
    kv_usage: float = 0.0
    ewma_ttft_s: float = 0.0
    ewma_tpot_s: float = 0.0
    weight: float = 1.0
    outstanding_work: int = 0
    tier: Literal["hot", "warm", "cold"] = "hot"

    @property
    def routable(self) -> bool:
        return self.state == "ready"

    @property
    def load(self) -> float:
        """Requests this replica holds, per unit of weight (what load bounds compare)."""
        return max(self.in_flight, self.waiting + self.running) / self.weight


@dataclass(frozen=True)
class RouteRequest:
    """One request as the rules and the balancer see it."""

    model: str
    task: RequestTask = "chat"
    user: str | None = None
    key_name: str | None = None
    tier: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    est_prompt_tokens: int = 0
    max_tokens: int = 0
    prefix_hashes: Sequence[int] = ()  # chained hashes of the prompt's leading blocks
    deadline_ms: int | None = None  # the client's latency SLA, if it gave one

    @property
    def predicted_work(self) -> int:
        return self.est_prompt_tokens + self.max_tokens
