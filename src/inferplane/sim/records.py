"""What the simulator remembers of each request: times, where it ran, how it ended."""

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["pending", "finished", "rejected"]


@dataclass(slots=True)  # a million of these in a large run: no per-record __dict__
class RequestRecord:
    """One trace request's life. Times are simulated seconds from the start of the trace.

    TTFT and latency are measured from arrival at the gateway, so time spent held for a replica
    (a cold start) or queued in a replica counts, as a client would see it. `hash_ids` are the
    trace's content ids of the prompt's blocks (empty: the prompt shares nothing).
    """

    index: int
    arrival_s: float
    prompt_tokens: int
    max_tokens: int
    hash_ids: tuple[int, ...] = ()
    pool: str = ""
    replica: str | None = None
    dispatched_s: float | None = None
    first_token_s: float | None = None
    finish_s: float | None = None
    output_tokens: int = 0
    cached_tokens: int = 0
    attempts: int = 0  # replicas it was sent to (more than one after a failover)
    held: bool = False
    outcome: Outcome = "pending"
    reason: str = ""  # why it was refused: "STATUS kind: detail", as a client would hear

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_s is None else self.first_token_s - self.arrival_s

    @property
    def latency_s(self) -> float | None:
        return None if self.finish_s is None else self.finish_s - self.arrival_s

    def reject(self, reason: str) -> None:
        self.outcome, self.reason = "rejected", reason
