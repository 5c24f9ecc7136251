"""`AsyncLLMEngine`: the engine's one async front, the `EngineClient` the server uses.

It owns what callers see: a stream per request, the checks a prompt passes before the engine
sees it, the queue-full refusal, abort, sleep / wake / shutdown, merging the updates that pile
up for a slow reader, and the latest stats. Under it, an `EngineLink` (link.py) reaches the
engine core: a `ThreadLink` steps it on a thread of this process, a `ProcessLink` in a child
process. Either link hands over one message per step, on its own thread; the front posts its
outputs to their streams with one `call_soon_threadsafe` per event loop. A consumer that
stops early (client gone, task cancelled) aborts its request, which frees its KV blocks at once.
If the core ends without being asked (a dead child), every stream fails at once with
EngineShutdownError, after the `on_exit` callbacks have run.
"""

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import itertools
import logging
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Literal

from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.engine import LLMEngine, validate_prompt
from inferplane.engine.core.outputs import RequestOutput
from inferplane.engine.core.protocol import (
    EngineShutdownError,
    EngineStats,
    QueueFullError,
    TextTokenizer,
)
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.engine.front.build import build_engine
from inferplane.engine.front.link import ADD, CALL, DROP, CallName, EngineLink, StepMessage
from inferplane.engine.front.process_link import ProcessLink
from inferplane.engine.front.thread_link import ThreadLink

log = logging.getLogger(__name__)
LinkKind = Literal["thread", "process"]
Item = RequestOutput | BaseException
Batches = dict[asyncio.AbstractEventLoop, list[tuple["_Stream", Item]]]


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


class AsyncLLMEngine:
    """Implements `EngineClient` over an engine core reached through `link`."""

    def __init__(
        self,
        link: EngineLink,
        model_name: str,
        tokenizer: TextTokenizer | None = None,
        max_waiting: int = EngineConfig.max_waiting,
    ) -> None:
        self._link = link
        self._model_name = model_name
        self._tokenizer = tokenizer
        self._max_waiting = max_waiting
        self._max_model_len = link.ready.max_model_len
        self._stats = link.ready.stats
        self._streams: dict[str, _Stream] = {}
        self._calls: dict[int, concurrent.futures.Future[None]] = {}
        self._call_ids = itertools.count()
        self._alive = True
        self._closing = False
        self._exit_callbacks: list[Callable[[], None]] = []
        link.connect(self)

    @classmethod
    def from_config(
        cls, config: EngineConfig, model_name: str | None = None, link: LinkKind = "thread"
    ) -> "AsyncLLMEngine":
        """Load the model named by `config.model`, stepped on a thread of this process or in
        a child process, and front it."""
        from inferplane.engine.core.tokenizer import Tokenizer  # noqa: PLC0415
        from inferplane.sources import resolve_source  # noqa: PLC0415

        tokenizer = Tokenizer.from_dir(resolve_source(config.model))  # bad sources fail here
        if link == "thread":
            engine_link: EngineLink = ThreadLink.load(
                functools.partial(build_engine, config, tokenizer)
            )
        else:  # the child loads its own tokenizer: cheaper than pickling this one
            engine_link = ProcessLink.spawn(functools.partial(build_engine, config))
        return cls(engine_link, model_name or config.model, tokenizer, config.max_waiting)

    @classmethod
    def on_thread(
        cls, engine: LLMEngine, model_name: str, tokenizer: TextTokenizer | None = None
    ) -> "AsyncLLMEngine":
        """Front an engine already built, stepped on a thread of this process."""
        return cls(ThreadLink(engine), model_name, tokenizer, engine.config.max_waiting)

    @property
    def link(self) -> EngineLink:
        return self._link

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    @property
    def tokenizer(self) -> TextTokenizer:
        if self._tokenizer is None:
            raise RuntimeError("this engine was built without a tokenizer")
        return self._tokenizer

    def stats(self) -> EngineStats:
        """The snapshot sent with the core's latest message."""
        return self._stats

    def on_exit(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the link's thread) if the core ends without being asked."""
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
            self._link.send((ADD, request_id, list(prompt_token_ids), params, priority))
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
                    self._link.send((DROP, request_id))

    def _open(self, prompt_token_ids: Sequence[int], request_id: str) -> _Stream:
        if self._closing or not self._alive:
            raise EngineShutdownError("the engine is shut down")
        validate_prompt(prompt_token_ids, self._max_model_len)
        if request_id in self._streams:
            raise ValueError(f"request id {request_id!r} is already in use")
        waiting = len(self._streams) - self._stats.num_running
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
        """Abort what is in flight (callers see finish_reason "abort") and stop the core."""
        if not self._closing and self._alive:
            with contextlib.suppress(EngineShutdownError):
                await self._call("abort_all")
        self._closing = True
        self._link.shutdown()
        await asyncio.to_thread(self._link.join)

    async def _call(self, name: CallName, arg: str | None = None) -> None:
        """Run a command in the core and wait until it is done there."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        call_id = next(self._call_ids)
        self._calls[call_id] = future
        try:
            self._link.send((CALL, call_id, name, arg))
        except EngineShutdownError:
            self._calls.pop(call_id, None)
            raise
        await asyncio.wrap_future(future)

    # --- the link's side (its own thread) ---

    def receive(self, message: StepMessage) -> None:
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

    def lost(self, failure: str | None) -> None:
        self._alive = False
        if failure is not None:
            self._run_exit_callbacks()  # before the streams fail: their callers see both
        error = EngineShutdownError(failure or "the engine is shut down")
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
