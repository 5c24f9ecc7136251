"""The engine core's loop turn, the same under both links: commands in, one step, one message.

A turn applies every command waiting (add, drop, call, shutdown), steps the `LLMEngine` once
if it has work, and returns ONE `StepMessage` with everything those produced plus a stats
snapshot, so the front pays one hand-over per step whatever the number of streams. A failing
step fails the requests in flight (rather than leaving them hanging) and the core serves on.
Only the link's thread touches the engine, so the engine needs no locks.
"""

from collections.abc import Callable, Iterable

from inferplane.engine.core.engine import LLMEngine
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.engine.front.link import CallName, Command, StepMessage

ExportError = Callable[[BaseException], BaseException]


def _same(error: BaseException) -> BaseException:
    return error


class Core:
    """One engine and the requests it has taken. `export_error` turns an error into what may
    cross the link (the process link needs it picklable)."""

    def __init__(self, engine: LLMEngine, export_error: ExportError = _same) -> None:
        self.engine = engine
        self.export_error = export_error
        self.live: set[str] = set()  # requests added and not yet finished
        self.stopping = False

    def busy(self) -> bool:
        return not self.engine.sleeping and self.engine.has_unfinished()

    def turn(self, commands: Iterable[Command]) -> StepMessage:
        message = StepMessage()
        for command in commands:
            self._handle(command, message)
        if not self.stopping and self.busy():
            self._step(message)
        if message:
            message.stats = self.engine.stats()
        return message

    def _handle(self, command: Command, message: StepMessage) -> None:
        match command:
            case ("add", request_id, prompt, params, priority):
                self._add(request_id, prompt, params, priority, message)
            case ("drop", request_id):
                self._abort(request_id, message)
            case ("call", call_id, name, arg):
                self._call(call_id, name, arg, message)
            case ("shutdown",):
                self.stopping = True

    def _add(
        self, rid: str, prompt: list[int], params: SamplingParams, prio: int, msg: StepMessage
    ) -> None:
        try:
            self.engine.add_request(rid, prompt, params, priority=prio)
        except Exception as error:  # the caller gets it; the loop must live on
            msg.failures.append((rid, self.export_error(error)))
            return
        self.live.add(rid)

    def _abort(self, request_id: str, message: StepMessage) -> None:
        self.live.discard(request_id)
        output = self.engine.abort(request_id)
        if output is not None:
            message.outputs.append(output)

    def _call(self, call_id: int, name: CallName, arg: str | None, message: StepMessage) -> None:
        try:
            self._run_call(name, arg, message)
        except Exception as error:
            message.replies.append((call_id, self.export_error(error)))
            return
        message.replies.append((call_id, None))

    def _run_call(self, name: CallName, arg: str | None, message: StepMessage) -> None:
        if name == "abort" and arg is not None:
            self._abort(arg, message)
        elif name == "abort_all":
            for request_id in list(self.live):
                self._abort(request_id, message)
        elif name == "sleep":
            self.engine.sleep()
        elif name == "wake":
            self.engine.wake()
        else:
            raise ValueError(f"unknown engine call {name!r} ({arg!r})")

    def _step(self, message: StepMessage) -> None:
        try:
            outputs = self.engine.step()
        except Exception as error:
            # The model failed (out of memory, a bad kernel): every request in flight gets the
            # error rather than hanging, and the engine keeps serving new ones.
            self._fail_all(self.export_error(error), message)
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
