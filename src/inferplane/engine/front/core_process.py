"""The engine core in its own process: the child side of `ProcessLink` (process_link.py).

Why a process: in one process the step thread (scheduler, sampler, detokenizer, torch) and the
server's event loop (HTTP, SSE) take turns on one GIL, so every token's HTTP work delays the
next step. Here the child owns the `LLMEngine` alone and the API process only does HTTP.

The child builds the engine on its main thread and steps it on that same thread (one OpenMP
team; see torch_thread.py). It loops: take every command waiting on the pipe (block on the
pipe when there is no work), turn the `Core` once (core_loop.py), and send the turn's ONE
message. The child ends on a shutdown command, or when the pipe reaches EOF: a parent that
died never leaves an orphan stepping a model.
"""

import contextlib
import os
import pickle
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection

from inferplane.engine.core.engine import LLMEngine
from inferplane.engine.front.core_loop import Core
from inferplane.engine.front.link import Command, LoadFailed, Ready

Build = Callable[[], LLMEngine]


def run_core(build: Build, conn: Connection) -> None:
    """The child's entry point (multiprocessing spawn target). `build` must pickle."""
    # The parent decides when to stop. Ctrl-C in a terminal and a SIGTERM to the server's
    # process group (how a local supervisor stops a replica) must not kill the model under
    # requests the parent is still draining: a session of our own keeps both away. A SIGTERM
    # sent to this pid still ends it (multiprocessing's exit handler relies on that).
    with contextlib.suppress(OSError):
        os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        engine = build()
    except BaseException as error:
        _send(conn, LoadFailed(picklable(error)))
        return
    _send(conn, Ready(engine.max_model_len, engine.stats()))
    with contextlib.suppress(EOFError, OSError):  # the parent is gone: nobody to serve
        serve(Core(engine, picklable), conn)


def serve(core: Core, conn: Connection) -> None:
    while not core.stopping:
        message = core.turn(_commands(conn, core.busy()))
        if message:
            _send(conn, message)


def _commands(conn: Connection, busy: bool) -> list[Command]:
    commands: list[Command] = [] if busy else [conn.recv()]  # idle: block until told something
    while conn.poll():
        commands.append(conn.recv())
    return commands


def _send(conn: Connection, message: object) -> None:
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def picklable(error: BaseException) -> BaseException:
    """The error itself when it crosses the pipe intact, else a RuntimeError that names it."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error
