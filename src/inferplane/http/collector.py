"""The garbage collector in a serving process, once it has loaded what it keeps.

What a process builds before it serves (modules, the app, the model, its books) lives as long
as the process: one collection, then out of the collector's sight (gc.freeze), so that a full
collection no longer walks every module's objects between two requests or two tokens of a
stream (it cost ~5% of a busy gateway worker's time). The thresholds stay CPython's: a young
generation ten times larger cut the number of collections, but the few full ones left took
about 100 ms each in a gateway worker under load, a pause every request in flight then waits
for, against about 15 ms with the defaults.
"""

import gc


def settle_heap() -> None:
    """Collect once and move what survives out of the collector's sight."""
    gc.collect()
    gc.freeze()
