"""A completion's confidence: the mean log-probability of its sampled tokens under the raw model
distribution (before penalties, temperature and filtering, as the sampler's logprobs are) and
the share of tokens the model gave less than LOW_CONFIDENCE_PROB. Both come from the logits of
the forward pass that produced the tokens: no extra pass.
"""

import math
from dataclasses import dataclass

LOW_CONFIDENCE_PROB = 0.1
LOW_CONFIDENCE_LOGPROB = math.log(LOW_CONFIDENCE_PROB)


@dataclass(frozen=True)
class Confidence:
    mean_logprob: float
    low_confidence_share: float
    tokens: int

    def as_json(self) -> dict[str, float | int]:
        """What the usage object of an answer carries under `confidence`."""
        return {
            "mean_logprob": round(self.mean_logprob, 6),
            "low_confidence_share": round(self.low_confidence_share, 6),
            "tokens": self.tokens,
        }


class ConfidenceTally:
    """One request's running sums, one add() per sampled token."""

    __slots__ = ("low", "tokens", "total")

    def __init__(self) -> None:
        self.total = 0.0
        self.low = 0
        self.tokens = 0

    def add(self, logprob: float) -> None:
        self.total += logprob
        self.tokens += 1
        if logprob < LOW_CONFIDENCE_LOGPROB:
            self.low += 1

    def result(self) -> Confidence | None:
        """None before the first token."""
        if not self.tokens:
            return None
        return Confidence(self.total / self.tokens, self.low / self.tokens, self.tokens)


def confidence_of(logprobs: list[float]) -> Confidence | None:
    tally = ConfidenceTally()
    for logprob in logprobs:
        tally.add(logprob)
    return tally.result()
