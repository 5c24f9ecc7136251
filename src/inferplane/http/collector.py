"""The garbage collector's settings for a serving process, once it has loaded what it keeps.

A serving process allocates a few dozen short-lived containers per request (scopes, headers,
futures, parsed bodies) and keeps the same long-lived ones (modules, the app, its books) from
start to end. With CPython's defaults it collected the young generation every 700 allocations
and, with the long-lived objects frozen, the whole heap about twice a second: about 5% of a
busy gateway worker's time, against about 1.3% with the thresholds below (an A/B under wrk,
bench/gateway/README.md). Cyclic garbage is still collected, in larger batches.
"""

import gc

YOUNG_THRESHOLD = 10_000  # allocations between young collections (CPython's default: 700)
OLDER_THRESHOLDS = (10, 10)  # CPython's default: each generation after 10 of the one before


def settle_heap() -> None:
    """Collect once, move what survives out of the collector's sight (it lives as long as the
    process), and collect in larger batches from now on."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
