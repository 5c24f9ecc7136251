"""Steps from request spans: the gateway's view of a replica when it cannot see engine steps.

The gateway knows each request's start, end and token count. Assuming a request processes its
tokens at an even pace, the replica's timeline cuts into stretches between request starts and
ends; in each stretch the active requests share the time by their token rates.
"""

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from inferplane.ledger.attribution import Step


class RequestSpan(NamedTuple):  # a tuple: the gateway makes one for every request
    request_id: str
    start: float
    end: float
    tokens: int  # tokens the replica processed for it (uncached prompt + completion)


def steps_from_spans(spans: Iterable[RequestSpan]) -> Iterator[Step]:
    """Cut overlapping request spans into steps weighted by each request's token rate."""
    events: list[tuple[float, int, RequestSpan]] = []
    for span in spans:
        if span.end > span.start:
            events += [(span.start, 1, span), (span.end, -1, span)]
    events.sort(key=lambda event: (event[0], event[1]))
    active: dict[str, float] = {}
    last = events[0][0] if events else 0.0
    for time, change, span in events:
        if time > last and active:
            yield Step(last, time, dict(active))
        last = time
        if change > 0:
            active[span.request_id] = max(span.tokens, 1) / (span.end - span.start)
        else:
            active.pop(span.request_id, None)
