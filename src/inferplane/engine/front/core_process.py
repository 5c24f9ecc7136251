"""The engine core in its own process: the child side of `ProcessEngine` (core_client.py).

Why a process: in one process the step thread (scheduler, sampler, detokenizer, torch) and the
server's event loop (HTTP, SSE) take turns on one GIL, so every token's HTTP work delays the
next step. Here the child owns the `LLMEngine` alone and the API process only does HTTP.

The child loads the model on its main thread and steps it on that same thread (one OpenMP
team; see torch_thread.py). It loops: take every command waiting on the pipe (block on the
pipe when there is no work), step once, then send ONE message with everything that step and
those commands produced, plus a stats snapshot. A failing step fails the requests in flight,
as AsyncLLMEngine does, and the loop serves on. The child ends on a shutdown command, or when
the pipe reaches EOF: a parent that died never leaves an orphan stepping a model.
"""

import contextlib
import os
import pickle
import signal
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.engine import LLMEngine
from inferplane.engine.core.outputs import RequestOutput
from inferplane.engine.core.protocol import EngineStats
from inferplane.engine.core.sampling_params import SamplingParams

# Commands, parent -> child (tuples: cheap to pickle):
#   ("add", request_id, prompt_token_ids, params, priority)
#   ("drop", request_id)                      abort, nobody waits for the final update
#   ("call", call_id, "abort" | "abort_all" | "sleep" | "wake", request_id | None)
#   ("shutdown",)
ADD, DROP, CALL, SHUTDOWN = "add", "drop", "call", "shutdown"


@dataclass(frozen=True)
class Ready:
    """The first message: the engine loaded (or `error` says why not)."""

    max_model_len: int = 0
    stats: EngineStats | None = None
    error: BaseException | None = None


@dataclass
class StepMessage:
    """Everything one loop turn produced: outputs, per-request failures, answered calls."""

    outputs: list[RequestOutput] = field(default_factory=list)
    failures: list[tuple[str, BaseException]] = field(default_factory=list)
    replies: list[tuple[int, BaseException | None]] = field(default_factory=list)
    stats: EngineStats | None = None

    def __bool__(self) -> bool:
        return bool(self.outputs or self.failures or self.replies)


def run_core(config: EngineConfig, conn: Connection, torch_threads: int | None) -> None:
    """The child's entry point (multiprocessing spawn target)."""
    # The parent decides when to stop. Ctrl-C in a terminal and a SIGTERM to the server's
    # process group (how a local supervisor stops a replica) must not kill the model under
    # requests the parent is still draining: a session of our own keeps both away. A SIGTERM
    # sent to this pid still ends it (multiprocessing's exit handler relies on that).
    with contextlib.suppress(OSError):
        os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        engine = _build_engine(config, torch_threads)
    except BaseException as error:
        _send(conn, Ready(error=_picklable(error)))
        return
    _send(conn, Ready(engine.max_model_len, engine.stats()))
    with contextlib.suppress(EOFError, OSError):  # the parent is gone: nobody to serve
        Core(engine, conn).serve()


def _build_engine(config: EngineConfig, torch_threads: int | None) -> LLMEngine:
    import torch  # noqa: PLC0415 (torch-heavy)

    from inferplane.engine.compute.runner import TorchModelRunner  # noqa: PLC0415
    from inferplane.engine.core.tokenizer import Tokenizer  # noqa: PLC0415
    from inferplane.sources import resolve_source  # noqa: PLC0415

    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    tokenizer = Tokenizer.from_dir(resolve_source(config.model))
    return LLMEngine(config, TorchModelRunner.from_config(config), tokenizer)


class Core:
    """The loop: commands in, one step, one message out."""

    def __init__(self, engine: LLMEngine, conn: Connection) -> None:
        self.engine = engine
        self.conn = conn
        self.live: set[str] = set()  # requests added and not yet finished
        self.stopping = False

    def serve(self) -> None:
        while not self.stopping:
            message = StepMessage()
            for command in self._commands():
                self._handle(command, message)
            if not self.stopping and self._busy():
                self._step(message)
            if message:
                message.stats = self.engine.stats()
                _send(self.conn, message)

    def _busy(self) -> bool:
        return not self.engine.sleeping and self.engine.has_unfinished()

    def _commands(self) -> list[tuple[Any, ...]]:
        conn = self.conn
        commands = [] if self._busy() else [conn.recv()]  # idle: block until told something
        while conn.poll():
            commands.append(conn.recv())
        return commands

    def _handle(self, command: tuple[Any, ...], message: StepMessage) -> None:
        kind = command[0]
        if kind == ADD:
            self._add(command[1], command[2], command[3], command[4], message)
        elif kind == DROP:
            self._abort(command[1], message)
        elif kind == CALL:
            self._call(command[1], command[2], command[3], message)
        elif kind == SHUTDOWN:
            self.stopping = True

    def _add(
        self, rid: str, prompt: list[int], params: SamplingParams, prio: int, msg: StepMessage
    ) -> None:
        try:
            self.engine.add_request(rid, prompt, params, priority=prio)
        except Exception as error:  # the caller gets it; the loop must live on
            msg.failures.append((rid, _picklable(error)))
            return
        self.live.add(rid)

    def _abort(self, request_id: str, message: StepMessage) -> None:
        self.live.discard(request_id)
        output = self.engine.abort(request_id)
        if output is not None:
            message.outputs.append(output)

    def _call(self, call_id: int, name: str, arg: Any, message: StepMessage) -> None:
        try:
            if name == "abort":
                self._abort(arg, message)
            elif name == "abort_all":
                for request_id in list(self.live):
                    self._abort(request_id, message)
            elif name == "sleep":
                self.engine.sleep()
            elif name == "wake":
                self.engine.wake()
            else:
                raise ValueError(f"unknown engine call {name!r}")
        except Exception as error:
            message.replies.append((call_id, _picklable(error)))
            return
        message.replies.append((call_id, None))

    def _step(self, message: StepMessage) -> None:
        try:
            outputs = self.engine.step()
        except Exception as error:
            # The model failed (out of memory, a bad kernel): every request in flight gets the
            # error rather than hanging, and the engine keeps serving new ones.
            self._fail_all(_picklable(error), message)
            return
        for output in outputs:
            if output.finished:
                self.live.discard(output.request_id)
        message.outputs.extend(outputs)

    def _fail_all(self, error: BaseException, message: StepMessage) -> None:
        for request_id in list(self.live):
            self.engine.abort(request_id)
            message.failures.append((request_id, error))
        self.live.clear()


def _send(conn: Connection, message: object) -> None:
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def _picklable(error: BaseException) -> BaseException:
    """The error itself when it crosses the pipe intact, else a RuntimeError that names it."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error
