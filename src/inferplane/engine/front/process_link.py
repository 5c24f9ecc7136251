"""`ProcessLink`: the engine core in a spawned child process (core_process.py), the parent side.

Commands go down a pipe as small pickled tuples. One reader thread takes each of the child's
messages (one per loop turn of its core) and hands it to the front, which posts the outputs
to their streams with one `call_soon_threadsafe` per event loop, so streams on any loop work.
(Reading on the event loop with `add_reader` would save a wake-up per step but tie the engine
to one loop; profiled under 32 streams the reader thread was ~15 % of the API process's
samples, most of it the blocking read with the GIL released.)

If the child dies, the reader sees EOF at once and tells the front, which fails every stream
in flight and runs its `on_exit` callbacks (the server then stops, so its supervisor restarts
it).
"""

import contextlib
import logging
import multiprocessing
import os
import pickle
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from inferplane.engine.core.protocol import EngineShutdownError
from inferplane.engine.front.core_process import Build, run_core
from inferplane.engine.front.link import SHUTDOWN, Command, LoadFailed, Ready, Receiver

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 10.0
# The child's OpenMP settings (a user's own setting wins). The child keeps torch's thread count
# (all cores): on 2 cores one thread capped the tiny model at ~2000 tokens/s over HTTP against
# ~2500-3000 with two. libgomp's default wait lets an idle worker spin ~300k times after each
# parallel region, which keeps it on a core through the step's Python work (scheduler,
# sampler, detokenizer), just when the API process wants that core to write the last step's
# tokens out; and when another process does take the core, its partner spins at every barrier
# (we saw the team fall to ~100 tokens/s under outside load). OMP_WAIT_POLICY=PASSIVE (sleep
# at once) paid a futex wake-up per op: ~0.5 of direct. A short spin keeps the workers hot
# between the ops of one forward and lets them sleep between steps.
CHILD_ENVIRONMENT = {"GOMP_SPINCOUNT": "20000"}


class ProcessLink:
    """Implements `EngineLink` over an engine core in a child process."""

    def __init__(self, process: BaseProcess, conn: Connection, ready: Ready) -> None:
        self._process = process
        self._conn = conn
        self._ready = ready
        self._send_lock = threading.Lock()
        self._alive = True
        self._stopping = False
        self._reader: threading.Thread | None = None

    @classmethod
    def spawn(cls, build: Build) -> "ProcessLink":
        """Start the child, wait until `build` (which must pickle) has made its engine."""
        context = multiprocessing.get_context("spawn")  # never fork a process holding threads
        conn, child_conn = context.Pipe()
        process = context.Process(
            target=run_core, args=(build, child_conn), name="inferplane-engine-core", daemon=True
        )
        with _environment(CHILD_ENVIRONMENT):
            process.start()
        child_conn.close()  # else our copy would hide the child's exit (no EOF)
        return cls(process, conn, _wait_ready(conn, process))

    @property
    def ready(self) -> Ready:
        return self._ready

    @property
    def pid(self) -> int | None:
        """The engine core's process id."""
        return self._process.pid

    def connect(self, receiver: Receiver) -> None:
        self._reader = threading.Thread(
            target=self._read, args=(receiver,), name="engine-core-reader", daemon=True
        )
        self._reader.start()

    def send(self, command: Command) -> None:
        data = pickle.dumps(command, protocol=pickle.HIGHEST_PROTOCOL)
        with self._send_lock:
            if not self._alive:
                raise EngineShutdownError("the engine is shut down")
            try:
                self._conn.send_bytes(data)
            except OSError as error:
                raise EngineShutdownError("the engine process is gone") from error

    def shutdown(self) -> None:
        self._stopping = True
        with contextlib.suppress(EngineShutdownError):
            self.send((SHUTDOWN,))

    def join(self) -> None:
        self._process.join(STOP_TIMEOUT_S)
        if self._process.is_alive():
            log.warning("the engine process did not stop in %.0fs: killing it", STOP_TIMEOUT_S)
            self._process.kill()
            self._process.join()
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT_S)
        self._conn.close()

    def _read(self, receiver: Receiver) -> None:
        """The reader thread: one message per loop turn of the child, until EOF."""
        receive, conn = receiver.receive, self._conn
        try:
            while True:
                receive(pickle.loads(conn.recv_bytes()))
        except (EOFError, OSError, pickle.UnpicklingError):
            pass  # EOF: the child has exited (asked to, or not)
        with self._send_lock:
            self._alive = False
        failure = None
        if not self._stopping:
            self._process.join(1.0)
            failure = f"the engine process exited unexpectedly (exit code {self._process.exitcode})"
            log.error("%s", failure)
        receiver.lost(failure)


def _wait_ready(conn: Connection, process: BaseProcess) -> Ready:
    """The child's first message; an error if it failed to load or died first."""
    while not conn.poll(0.1) and process.is_alive():
        pass
    try:
        first: Ready | LoadFailed = pickle.loads(conn.recv_bytes())
    except (EOFError, OSError) as error:
        process.join(STOP_TIMEOUT_S)
        conn.close()
        raise RuntimeError(
            f"the engine process exited with code {process.exitcode} while loading"
        ) from error
    if isinstance(first, LoadFailed):
        process.join(STOP_TIMEOUT_S)
        conn.close()
        raise first.error
    return first


@contextlib.contextmanager
def _environment(defaults: dict[str, str]) -> Iterator[None]:
    """Set environment defaults for a child started inside the block, then restore."""
    added = [name for name in defaults if name not in os.environ]
    for name in added:
        os.environ[name] = defaults[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
