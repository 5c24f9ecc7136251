"""The async front of the engine: many concurrent `generate()` streams over one step loop.

One background thread owns the `LLMEngine`: every change (add, abort, sleep, wake) is queued
to it as a command, so the engine itself needs no locks. The thread steps while work exists
and sleeps on a condition otherwise. Outputs cross back to each caller's event loop with one
`call_soon_threadsafe` per step, into a per-request asyncio.Queue. A consumer that stops
early (client gone, task cancelled) aborts its request, which frees its KV blocks at once.
"""

import asyncio
import concurrent.futures
import contextlib
import threading
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from inferplane.engine.compute.torch_thread import TorchThread
from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.engine import LLMEngine
from inferplane.engine.core.outputs import RequestOutput
from inferplane.engine.core.protocol import EngineStats, QueueFullError, TextTokenizer
from inferplane.engine.core.sampling_params import SamplingParams

T = TypeVar("T")
Item = RequestOutput | BaseException


class EngineShutdownError(RuntimeError):
    """The engine was shut down; no new requests are taken."""


@dataclass(frozen=True)
class _Stream:
    loop: asyncio.AbstractEventLoop
    queue: "asyncio.Queue[Item]"


class AsyncLLMEngine:
    """Implements `EngineClient` over an `LLMEngine` driven by a background thread."""

    def __init__(
        self,
        engine: LLMEngine,
        model_name: str,
        tokenizer: TextTokenizer | None = None,
        max_waiting: int | None = None,
        thread: TorchThread | None = None,
    ) -> None:
        self._engine = engine
        self._model_name = model_name
        self._tokenizer = tokenizer if tokenizer is not None else engine.tokenizer
        self._max_waiting = max_waiting if max_waiting is not None else engine.config.max_waiting
        self._streams: dict[str, _Stream] = {}
        self._commands: deque[Callable[[], None]] = deque()
        self._cond = threading.Condition()
        self._thread = thread if thread is not None else TorchThread()
        self._started = False
        self._stopped = False

    @classmethod
    def from_config(cls, config: EngineConfig, model_name: str | None = None) -> "AsyncLLMEngine":
        """Load the model and tokenizer named by `config.model` and build the engine."""
        # Imported here: torch is heavy, and tests and the simulator build engines without it.
        from inferplane.engine.compute.runner import TorchModelRunner  # noqa: PLC0415
        from inferplane.engine.core.tokenizer import Tokenizer  # noqa: PLC0415
        from inferplane.sources import resolve_source  # noqa: PLC0415

        tokenizer = Tokenizer.from_dir(resolve_source(config.model))
        thread = TorchThread()  # the model loads on the thread that will step it
        engine = thread.call(
            lambda: LLMEngine(config, TorchModelRunner.from_config(config), tokenizer)
        )
        return cls(engine, model_name or config.model, tokenizer, config.max_waiting, thread)

    @property
    def engine(self) -> LLMEngine:
        return self._engine

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def max_model_len(self) -> int:
        return self._engine.max_model_len

    @property
    def tokenizer(self) -> TextTokenizer:
        if self._tokenizer is None:
            raise RuntimeError("this engine was built without a tokenizer")
        tokenizer: TextTokenizer = self._tokenizer
        return tokenizer

    def stats(self) -> EngineStats:
        return self._engine.stats()

    async def generate(
        self,
        prompt_token_ids: Sequence[int],
        params: SamplingParams,
        request_id: str,
        priority: int = 0,
    ) -> AsyncGenerator[RequestOutput, None]:
        """Stream updates until finished; leaving early aborts the request."""
        stream = self._open(prompt_token_ids, request_id)
        prompt = list(prompt_token_ids)
        self._submit(lambda: self._add(request_id, prompt, params, priority))
        finished = False
        try:
            while not finished:
                item = await stream.queue.get()
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                finished = item.finished
                yield item
        finally:
            if not finished:
                self._streams.pop(request_id, None)
                self._submit(lambda: self._drop(request_id))

    def _open(self, prompt_token_ids: Sequence[int], request_id: str) -> _Stream:
        if self._stopped:
            raise EngineShutdownError("the engine is shut down")
        self._engine.validate(prompt_token_ids)
        if request_id in self._streams:
            raise ValueError(f"request id {request_id!r} is already in use")
        waiting = len(self._streams) - self._engine.scheduler.num_running
        if waiting >= self._max_waiting:
            raise QueueFullError(f"{waiting} requests are waiting (max_waiting): retry later")
        stream = _Stream(asyncio.get_running_loop(), asyncio.Queue())
        self._streams[request_id] = stream
        return stream

    def _add(self, request_id: str, prompt: list[int], params: SamplingParams, prio: int) -> None:
        if request_id not in self._streams:
            return  # the caller left before the engine saw the request
        try:
            self._engine.add_request(request_id, prompt, params, priority=prio)
        except Exception as error:  # the caller gets it; the step thread must live on
            self._fail([request_id], error)

    def _drop(self, request_id: str) -> None:
        self._engine.abort(request_id)  # nobody waits for the final update

    async def abort(self, request_id: str) -> None:
        await self._call(lambda: self._deliver(_present(self._engine.abort(request_id))))

    async def sleep(self) -> None:
        await self._call(self._engine.sleep)

    async def wake(self) -> None:
        await self._call(self._engine.wake)

    async def shutdown(self) -> None:
        """Abort what is in flight (callers see finish_reason "abort") and stop the thread."""
        if self._started and not self._stopped:
            await self._call(self._abort_all)
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._started:
            await asyncio.to_thread(self._thread.join)

    def _abort_all(self) -> None:
        for request_id in list(self._streams):
            self._deliver(_present(self._engine.abort(request_id)))

    async def _call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the engine thread and await its result."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def command() -> None:
            try:
                future.set_result(fn())
            except Exception as error:
                future.set_exception(error)

        self._submit(command)
        return await asyncio.wrap_future(future)

    def _submit(self, command: Callable[[], None]) -> None:
        with self._cond:
            if self._stopped:
                raise EngineShutdownError("the engine is shut down")
            self._commands.append(command)
            if not self._started:
                self._started = True
                self._thread.run(self._run)
            self._cond.notify()

    def _run(self) -> None:
        engine = self._engine
        while True:
            with self._cond:
                while not (self._stopped or self._commands or _busy(engine)):
                    self._cond.wait()
                if self._stopped:
                    return
                commands = list(self._commands)
                self._commands.clear()
            for command in commands:
                command()
            if _busy(engine):
                self._step()

    def _step(self) -> None:
        try:
            outputs = self._engine.step()
        except Exception as error:
            # The model failed (out of memory, a bad kernel): every request in flight gets the
            # error rather than hanging, and the engine keeps serving new ones.
            self._fail(list(self._streams), error)
            return
        self._deliver(outputs)

    def _fail(self, request_ids: list[str], error: Exception) -> None:
        for request_id in request_ids:
            self._engine.abort(request_id)
        self._send([(rid, error) for rid in request_ids])

    def _deliver(self, outputs: Sequence[RequestOutput]) -> None:
        self._send([(out.request_id, out) for out in outputs])

    def _send(self, items: Sequence[tuple[str, Item]]) -> None:
        """Hand items to their callers' loops, one thread-safe call per loop."""
        batches: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue[Item], Item]]] = {}
        for request_id, item in items:
            final = not isinstance(item, RequestOutput) or item.finished
            stream = self._streams.pop(request_id, None) if final else self._streams.get(request_id)
            if stream is not None:
                batches.setdefault(stream.loop, []).append((stream.queue, item))
        for loop, batch in batches.items():
            # a closed loop means nobody is listening any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_put_all, batch)


def _busy(engine: LLMEngine) -> bool:
    return not engine.sleeping and engine.has_unfinished()


def _put_all(batch: list[tuple["asyncio.Queue[Item]", Item]]) -> None:
    for queue, item in batch:
        queue.put_nowait(item)


def _present(output: RequestOutput | None) -> list[RequestOutput]:
    return [] if output is None else [output]
