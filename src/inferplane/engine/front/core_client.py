"""`ProcessEngine`: the `EngineClient` of an engine core running in a child process.

The API process keeps only what HTTP needs: the tokenizer (prompts are encoded and checked
here, so bad input fails fast with the same errors as in-process), a small queue per stream
(updates that pile up there are merged), and the latest stats snapshot. Commands go down a
pipe as small pickled tuples; one reader thread takes each loop turn's message from the child
(core_process.py) and hands its outputs to their streams with one `call_soon_threadsafe` per
event loop, as AsyncLLMEngine does, so streams on any loop work. (Reading on the event loop
with `add_reader` would save a wake-up per step but tie the engine to one loop; profiled under
32 streams the reader thread was ~15 % of the API process's samples, most of it the blocking
read with the GIL released.)

If the child dies, the reader sees EOF at once: every stream in flight raises
EngineShutdownError (the server answers 503), later requests fail the same way, and the
callbacks given to `on_exit` run (the server then stops, so its supervisor restarts it).
"""

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import itertools
import logging
import multiprocessing
import os
import pickle
import threading
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.engine import validate_prompt
from inferplane.engine.core.outputs import RequestOutput
from inferplane.engine.core.protocol import EngineStats, QueueFullError, TextTokenizer
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.engine.front.async_engine import EngineShutdownError
from inferplane.engine.front.core_process import (
    ADD,
    CALL,
    DROP,
    SHUTDOWN,
    Ready,
    StepMessage,
    run_core,
)

log = logging.getLogger(__name__)
Item = RequestOutput | BaseException
Batches = dict[asyncio.AbstractEventLoop, list[tuple["_Stream", Item]]]
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


class _Stream:
    """One request's updates, waiting for its consumer on its event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: deque[Item] = deque()
        self.waiter: asyncio.Future[None] | None = None

    def put(self, item: Item) -> None:
        self.items.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def take(self) -> list[Item]:
        """Everything that arrived since the last take (waits for at least one item)."""
        while not self.items:
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        items = list(self.items)
        self.items.clear()
        return items


class ProcessEngine:
    """Implements `EngineClient` over an engine core in a child process."""

    def __init__(
        self,
        process: BaseProcess,
        conn: Connection,
        tokenizer: TextTokenizer,
        model_name: str,
        *,
        ready: Ready,
        max_waiting: int,
    ) -> None:
        self._process = process
        self._conn = conn
        self._tokenizer = tokenizer
        self._model_name = model_name
        self._max_model_len = ready.max_model_len
        self._stats = ready.stats
        self._max_waiting = max_waiting
        self._streams: dict[str, _Stream] = {}
        self._calls: dict[int, concurrent.futures.Future[None]] = {}
        self._call_ids = itertools.count()
        self._send_lock = threading.Lock()
        self._alive = True
        self._closing = False
        self._exit_callbacks: list[Callable[[], None]] = []
        self._reader = threading.Thread(target=self._read, name="engine-core-reader", daemon=True)

    @classmethod
    def from_config(
        cls, config: EngineConfig, model_name: str | None = None, torch_threads: int | None = None
    ) -> "ProcessEngine":
        """Start the child, wait until it has loaded the model, and connect to it."""
        from inferplane.engine.core.tokenizer import Tokenizer  # noqa: PLC0415
        from inferplane.sources import resolve_source  # noqa: PLC0415

        tokenizer = Tokenizer.from_dir(resolve_source(config.model))  # bad sources fail here
        context = multiprocessing.get_context("spawn")  # never fork a process holding threads
        conn, child_conn = context.Pipe()
        process = context.Process(
            target=run_core,
            args=(config, child_conn, torch_threads),
            name="inferplane-engine-core",
            daemon=True,
        )
        with _environment(CHILD_ENVIRONMENT):
            process.start()
        child_conn.close()  # else our copy would hide the child's exit (no EOF)
        ready = _wait_ready(conn, process)
        name = model_name or config.model
        engine = cls(process, conn, tokenizer, name, ready=ready, max_waiting=config.max_waiting)
        engine._reader.start()
        return engine

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    @property
    def tokenizer(self) -> TextTokenizer:
        return self._tokenizer

    @property
    def pid(self) -> int | None:
        """The engine core's process id."""
        return self._process.pid

    def stats(self) -> EngineStats:
        """The snapshot sent with the child's latest message."""
        if self._stats is None:
            raise RuntimeError("the engine process sent no stats")
        return self._stats

    def on_exit(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on a background thread) if the child exits without being asked."""
        self._exit_callbacks.append(callback)

    async def generate(
        self,
        prompt_token_ids: Sequence[int],
        params: SamplingParams,
        request_id: str,
        priority: int = 0,
    ) -> AsyncGenerator[RequestOutput, None]:
        """Stream updates until finished; leaving early aborts the request."""
        stream = self._open(prompt_token_ids, request_id)
        try:
            self._send((ADD, request_id, list(prompt_token_ids), params, priority))
        except EngineShutdownError:
            self._streams.pop(request_id, None)
            raise
        finished = False
        try:
            while not finished:
                for item in _coalesce(await stream.take()):
                    if isinstance(item, BaseException):
                        finished = True
                        raise item
                    finished = item.finished
                    yield item
        finally:
            if not finished and self._streams.pop(request_id, None) is not None:
                with contextlib.suppress(EngineShutdownError):
                    self._send((DROP, request_id))

    def _open(self, prompt_token_ids: Sequence[int], request_id: str) -> _Stream:
        if self._closing or not self._alive:
            raise EngineShutdownError("the engine is shut down")
        validate_prompt(prompt_token_ids, self._max_model_len)
        if request_id in self._streams:
            raise ValueError(f"request id {request_id!r} is already in use")
        waiting = len(self._streams) - self.stats().num_running
        if waiting >= self._max_waiting:
            raise QueueFullError(f"{waiting} requests are waiting (max_waiting): retry later")
        stream = _Stream(asyncio.get_running_loop())
        self._streams[request_id] = stream
        return stream

    async def abort(self, request_id: str) -> None:
        await self._call("abort", request_id)

    async def sleep(self) -> None:
        await self._call("sleep")

    async def wake(self) -> None:
        await self._call("wake")

    async def shutdown(self) -> None:
        """Abort what is in flight (callers see finish_reason "abort") and stop the child."""
        if not self._closing and self._alive:
            with contextlib.suppress(EngineShutdownError):
                await self._call("abort_all")
        self._closing = True
        with contextlib.suppress(EngineShutdownError):
            self._send((SHUTDOWN,))
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        self._process.join(STOP_TIMEOUT_S)
        if self._process.is_alive():
            log.warning("the engine process did not stop in %.0fs: killing it", STOP_TIMEOUT_S)
            self._process.kill()
            self._process.join()
        self._reader.join(STOP_TIMEOUT_S)
        self._conn.close()

    async def _call(self, name: str, arg: str | None = None) -> None:
        """Run a command in the child and wait until it is done there."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        call_id = next(self._call_ids)
        self._calls[call_id] = future
        try:
            self._send((CALL, call_id, name, arg))
        except EngineShutdownError:
            self._calls.pop(call_id, None)
            raise
        await asyncio.wrap_future(future)

    def _send(self, command: tuple[object, ...]) -> None:
        data = pickle.dumps(command, protocol=pickle.HIGHEST_PROTOCOL)
        with self._send_lock:
            if not self._alive:
                raise EngineShutdownError("the engine is shut down")
            try:
                self._conn.send_bytes(data)
            except OSError as error:
                raise EngineShutdownError("the engine process is gone") from error

    def _read(self) -> None:
        """The reader thread: one message per loop turn of the child, until EOF."""
        try:
            while True:
                self._dispatch(pickle.loads(self._conn.recv_bytes()))
        except (EOFError, OSError, pickle.UnpicklingError):
            pass  # EOF: the child has exited (asked to, or not)
        self._on_child_exit()

    def _dispatch(self, message: StepMessage) -> None:
        if message.stats is not None:
            self._stats = message.stats  # before the replies: a woken engine reads awake
        batches: Batches = {}
        for output in message.outputs:
            self._route(output.request_id, output, output.finished, batches)
        for request_id, failure in message.failures:
            self._route(request_id, failure, True, batches)
        _post(batches)
        for call_id, error in message.replies:
            future = self._calls.pop(call_id, None)
            if future is None:
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    def _route(self, request_id: str, item: Item, final: bool, batches: Batches) -> None:
        stream = self._streams.pop(request_id, None) if final else self._streams.get(request_id)
        if stream is not None:
            batches.setdefault(stream.loop, []).append((stream, item))

    def _on_child_exit(self) -> None:
        with self._send_lock:
            self._alive = False
        expected = self._closing
        if not expected:
            self._process.join(1.0)
            log.error(
                "the engine process exited unexpectedly (exit code %s)", self._process.exitcode
            )
            self._run_exit_callbacks()  # before the streams fail: their callers see both
        error = EngineShutdownError(
            "the engine is shut down" if expected else "the engine process exited unexpectedly"
        )
        batches: Batches = {}
        for request_id in list(self._streams):
            self._route(request_id, error, True, batches)
        _post(batches)
        for call_id in list(self._calls):
            future = self._calls.pop(call_id, None)
            if future is not None:
                future.set_exception(error)

    def _run_exit_callbacks(self) -> None:
        for callback in self._exit_callbacks:
            try:
                callback()
            except Exception:  # one broken callback must not keep the streams waiting
                log.exception("an on_exit callback failed")


def _post(batches: Batches) -> None:
    for loop, batch in batches.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening any more
            loop.call_soon_threadsafe(_put_all, batch)


def _put_all(batch: list[tuple[_Stream, Item]]) -> None:
    for stream, item in batch:
        stream.put(item)


def _coalesce(items: list[Item]) -> list[Item]:
    """Merge updates that queued up while the consumer was busy into one: an update carries
    the tokens added since the last one the consumer saw, so nothing is lost, and a server
    that falls behind writes one SSE chunk for several tokens (its per-token cost shrinks as
    load grows, instead of the backlog growing). An error stays last and separate."""
    merged: list[Item] = []
    for item in items:
        last = merged[-1] if merged else None
        if isinstance(item, RequestOutput) and isinstance(last, RequestOutput):
            merged[-1] = dataclasses.replace(item, new_tokens=last.new_tokens + item.new_tokens)
        else:
            merged.append(item)
    return merged


def _wait_ready(conn: Connection, process: BaseProcess) -> Ready:
    """The child's first message; an error if it failed to load or died first."""
    while not conn.poll(0.1) and process.is_alive():
        pass
    try:
        ready: Ready = pickle.loads(conn.recv_bytes())
    except (EOFError, OSError) as error:
        process.join(STOP_TIMEOUT_S)
        raise RuntimeError(
            f"the engine process exited with code {process.exitcode} while loading"
        ) from error
    if ready.error is not None:
        process.join(STOP_TIMEOUT_S)
        conn.close()
        raise ready.error
    return ready


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
