"""The retry budget: retries may add at most `ratio` of the request rate, plus a small floor
of `min_per_s`, so a sick fleet is not hit with a storm of retries on top of its load.

Each request deposits `ratio` of a token, time deposits `min_per_s` tokens a second, and each
retry spends one; the balance is capped at `burst`, which it starts at.
"""

from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass(frozen=True)
class RetryConfig:
    max_attempts: int = 3
    ratio: float = 0.2
    min_per_s: float = 10.0
    burst: float = 50.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1 (1 means no retries)")
        if self.ratio < 0 or self.min_per_s < 0 or self.burst < 1:
            raise ValueError("retry ratio and min_per_s must be >= 0 and burst >= 1")


class RetryBudget:
    def __init__(self, config: RetryConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.balance = config.burst
        self._last = clock()

    def on_request(self) -> None:
        self.balance = min(self.config.burst, self.balance + self.config.ratio)

    def try_spend(self) -> bool:
        """Take one retry from the budget; False (and nothing taken) when it is spent."""
        self._refill()
        if self.balance < 1.0:
            return False
        self.balance -= 1.0
        return True

    def _refill(self) -> None:
        now = self.clock()
        elapsed, self._last = now - self._last, now
        if elapsed > 0:
            self.balance = min(self.config.burst, self.balance + elapsed * self.config.min_per_s)
