"""A full disk, for real, in this process: RLIMIT_FSIZE makes the kernel refuse a write past
`limit` bytes of any file (a write that crosses it is cut short, the next fails with EFBIG),
the way a full disk cuts a write short and then fails it with ENOSPC. Held only around the
calls under test: every file the process writes meanwhile is bound by it."""

import contextlib
import resource
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def files_limited_to(limit: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the error, not the signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
