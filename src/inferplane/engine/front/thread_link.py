"""`ThreadLink`: the engine core on a thread of this process (`inferplane serve
--engine-in-process`, the benchmarks, tests).

The core runs on the `TorchThread` that loaded the model (one OpenMP team; see
torch_thread.py). Commands wait in a deque under a condition; the thread takes them all,
turns the core once, and hands the turn's message to the front in a plain call, so nothing is
pickled. It steps while there is work and sleeps on the condition otherwise.
"""

import logging
import threading
from collections import deque
from collections.abc import Callable

from inferplane.engine.compute.torch_thread import TorchThread
from inferplane.engine.core.engine import LLMEngine
from inferplane.engine.core.protocol import EngineShutdownError
from inferplane.engine.front.core_loop import Core
from inferplane.engine.front.link import SHUTDOWN, Command, Ready, Receiver

log = logging.getLogger(__name__)


class ThreadLink:
    """Implements `EngineLink` over an `LLMEngine` stepped on a thread of this process."""

    def __init__(self, engine: LLMEngine, thread: TorchThread | None = None) -> None:
        self._core = Core(engine)
        self._thread = thread if thread is not None else TorchThread()
        self._ready = Ready(engine.max_model_len, engine.stats())
        self._commands: deque[Command] = deque()
        self._cond = threading.Condition()
        self._open = True

    @classmethod
    def load(cls, build: Callable[[], LLMEngine]) -> "ThreadLink":
        """Build the engine on the thread that will step it."""
        thread = TorchThread()
        return cls(thread.call(build), thread)

    @property
    def ready(self) -> Ready:
        return self._ready

    def connect(self, receiver: Receiver) -> None:
        self._thread.run(lambda: self._serve(receiver))

    def send(self, command: Command) -> None:
        with self._cond:
            if not self._open:
                raise EngineShutdownError("the engine is shut down")
            self._commands.append(command)
            self._cond.notify()

    def shutdown(self) -> None:
        with self._cond:
            if self._open:
                self._commands.append((SHUTDOWN,))
                self._open = False
                self._cond.notify()

    def join(self) -> None:
        self._thread.join()

    def _serve(self, receiver: Receiver) -> None:
        failure = None
        try:
            self._loop(receiver)
        except BaseException as error:  # a broken loop must not leave streams waiting
            log.exception("the engine loop failed")
            failure = f"the engine loop failed: {error!r}"
        with self._cond:
            self._open = False
        receiver.lost(failure)

    def _loop(self, receiver: Receiver) -> None:
        core, cond, commands = self._core, self._cond, self._commands
        while not core.stopping:
            with cond:
                while not (commands or core.busy()):
                    cond.wait()
                batch = list(commands)
                commands.clear()
            message = core.turn(batch)
            if message:
                receiver.receive(message)
