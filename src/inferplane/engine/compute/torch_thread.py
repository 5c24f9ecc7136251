"""One OS thread for all of an engine's torch work: loading the model and every step.

Why: torch's CPU kernels run on an OpenMP team owned by the calling OS thread, so a model
loaded on one thread and stepped on another keeps two teams on the same cores. Measured on
demo:small (bf16, 2 cores): decoding on a second thread after loading on the first ran at
~13-15 tokens/s, against ~19-21 when one thread did both.
"""

import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
_Job = Callable[[], None] | None


class TorchThread:
    """Runs callables in order on one daemon thread, started on first use."""

    def __init__(self, name: str = "engine-step") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the thread and wait for its result (or its exception)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job() -> None:
            try:
                future.set_result(fn())
            except BaseException as error:
                future.set_exception(error)

        self.run(job)
        return future.result()

    def run(self, fn: Callable[[], None]) -> None:
        """Queue `fn` (it may run for as long as it likes: later jobs wait for it)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._jobs.put(fn)

    def join(self) -> None:
        """Let queued jobs finish, then end the thread."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()
