"""What crosses between the engine front and an engine core: commands, messages, the links.

The front (async_engine.py) owns the streams. Under it, an `EngineLink` carries commands down to
one `Core` (core_loop.py) and hands the core's messages back up, ONE per loop turn of the core.
Two links implement it: `ThreadLink` (the core on a thread of this process) and `ProcessLink`
(the core in a child process, over a pipe). Commands are small tuples and messages plain
dataclasses: the process link pickles every one of them, and tuples are the cheapest to pickle.
"""

from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from inferplane.engine.core.outputs import RequestOutput
from inferplane.engine.core.protocol import EngineStats
from inferplane.engine.core.sampling_params import SamplingParams

ADD: Final = "add"
DROP: Final = "drop"
CALL: Final = "call"
SHUTDOWN: Final = "shutdown"
CallName = Literal["abort", "abort_all", "sleep", "wake"]
# ("add", request_id, prompt_token_ids, params, priority)
AddCommand = tuple[Literal["add"], str, list[int], SamplingParams, int]
# ("drop", request_id): abort, nobody waits for the final update
DropCommand = tuple[Literal["drop"], str]
# ("call", call_id, name, request_id | None): answered in a message's replies
CallCommand = tuple[Literal["call"], int, CallName, str | None]
ShutdownCommand = tuple[Literal["shutdown"]]
Command = AddCommand | DropCommand | CallCommand | ShutdownCommand


@dataclass(frozen=True)
class Ready:
    """What the front learns once the engine has loaded."""

    max_model_len: int
    stats: EngineStats


@dataclass(frozen=True)
class LoadFailed:
    """The child's first message when the engine did not load."""

    error: BaseException


@dataclass
class StepMessage:
    """Everything one loop turn produced: outputs, per-request failures, answered calls."""

    outputs: list[RequestOutput] = field(default_factory=list)
    failures: list[tuple[str, BaseException]] = field(default_factory=list)
    replies: list[tuple[int, BaseException | None]] = field(default_factory=list)
    stats: EngineStats | None = None

    def __bool__(self) -> bool:
        return bool(self.outputs or self.failures or self.replies)


class Receiver(Protocol):
    """The front's side of a link. Called on the link's own thread, never on an event loop."""

    def receive(self, message: StepMessage) -> None:
        """One loop turn's message, in the order the core sent them."""
        ...

    def lost(self, failure: str | None) -> None:
        """The core is gone and nothing more will arrive: `failure` says what happened when
        it ended without being asked to (None when `shutdown` asked it to)."""
        ...


class EngineLink(Protocol):
    """How the front reaches one engine core."""

    @property
    def ready(self) -> Ready: ...

    def connect(self, receiver: Receiver) -> None:
        """Start handing the core's messages to `receiver` (once, before the first send)."""
        ...

    def send(self, command: Command) -> None:
        """Queue a command for the core; raises EngineShutdownError when the core is gone."""
        ...

    def shutdown(self) -> None:
        """Ask the core to stop after the commands already sent (returns at once)."""
        ...

    def join(self) -> None:
        """Wait until the core has stopped and free what the link holds (blocking)."""
        ...
