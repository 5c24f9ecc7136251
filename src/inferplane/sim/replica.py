"""One simulated engine replica: the real scheduler and KV cache, a step-time model for the
forward pass.

Each step asks the engine's Scheduler for its plan, takes the step's duration from the
StepTimeModel, and when that time has passed applies the plan with `update_from_output`, as
the engine does after its runner returns. A chunk that reaches the end of its request's known
tokens samples a token (the engine's rule); the token id is always the same, and requests run
with ignore_eos and max_tokens = the trace's output length, so they stop on length alone.
Decode-only runs of steps go behind one event (stretch.py); `settle` brings the replica up to
the present before anyone reads or changes it.

Prompts come from sim/prompts.py: shared where the trace says its blocks are shared, one token
of the request's own otherwise, so no two requests share a cached block by accident.
"""

import bisect
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from inferplane.engine.core.kv_cache import KVCacheManager
from inferplane.engine.core.request import Request
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.engine.core.scheduler import Scheduler, SchedulerConfig, SchedulerOutput
from inferplane.sim.events import EventLoop
from inferplane.sim.latency import StepTimeModel
from inferplane.sim.prompts import Prompts
from inferplane.sim.records import RequestRecord
from inferplane.sim.stretch import Stretch, plan_stretch, stretch_steps

ReplicaPhase = Literal["starting", "ready", "draining", "sleeping", "stopped"]
SAMPLED_TOKEN = 1  # what every step samples: never a prompt's token, never a stop token


@dataclass(frozen=True)
class ReplicaShape:
    """The engine settings a simulated replica runs with."""

    num_blocks: int
    block_size: int = 16
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 2048
    max_model_len: int = 4096
    max_waiting: int = 1024  # beyond this the server answers 429
    gpus: int = 1  # GPUs the replica holds, for GPU-seconds


@dataclass(frozen=True)
class ReplicaEvents:
    """What the replica tells its owner: a first token, a finished request, nothing left."""

    first_token: Callable[["SimReplica", RequestRecord], None]
    finished: Callable[["SimReplica", RequestRecord], None]
    empty: Callable[["SimReplica"], None]


class SimReplica:
    """A replica's engine on simulated time; `phase` is the controller's view of it."""

    def __init__(  # noqa: PLR0917 (each is a seam)
        self,
        name: str,
        replica_id: str,
        shape: ReplicaShape,
        step_time: StepTimeModel,
        loop: EventLoop,
        events: ReplicaEvents,
        prompts: Prompts | None = None,
        *,
        stretches: bool = True,
    ) -> None:
        self.name = name
        self.id = replica_id
        self.shape = shape
        self.step_time = step_time
        self.loop = loop
        self.events = events
        self.prompts = prompts or Prompts(0, shape.block_size)
        self.kv = KVCacheManager(shape.num_blocks, shape.block_size)
        config = SchedulerConfig(
            shape.max_num_seqs, shape.max_num_batched_tokens, self.max_model_len
        )
        self.scheduler = Scheduler(config, self.kv, loop.clock)
        self.phase: ReplicaPhase = "starting"
        self.started_s = loop.clock.now
        self.ready_s: float | None = None
        self.stopped_s: float | None = None
        self.records: dict[str, RequestRecord] = {}
        self.busy_s = 0.0
        self.steps = 0
        self._stepping = False  # a step is planned or in progress
        self._plan = SchedulerOutput()  # the step in progress
        self._sampled: dict[str, int] = {}
        self._prefilling: list[Request] = []  # in the step in progress: may get a first token
        self._stretch: Stretch | None = None
        self._turn = 0  # numbers the pending end-of-step event; an older one is stale
        self._killed = False
        self._stretches = stretches  # off: one event per step (the tests compare both)
        self._params: dict[int, SamplingParams] = {}  # by max_tokens

    @property
    def max_model_len(self) -> int:
        """As the engine resolves it: never more than the cache holds for one request."""
        return min(self.shape.max_model_len, self.shape.num_blocks * self.shape.block_size)

    @property
    def in_flight(self) -> int:
        return len(self.records)

    def refusal(self, record: RequestRecord) -> str | None:
        """Why the server would refuse the request (400, 429), or None when it takes it."""
        if record.prompt_tokens > self.max_model_len:
            return (
                f"400 context_length_exceeded: {record.prompt_tokens} prompt tokens > "
                f"max_model_len {self.max_model_len}"
            )
        self.settle()
        if self.scheduler.num_waiting >= self.shape.max_waiting:
            return f"429 queue_full: {self.scheduler.num_waiting} requests waiting"
        return None

    def add(self, record: RequestRecord) -> None:
        """Queue the request in the scheduler and start stepping if the engine was idle."""
        self.settle()
        self._cut()
        rid = str(record.index)
        params = self._params.get(record.max_tokens)
        if params is None:  # frozen, so requests of one length share one
            params = self._params[record.max_tokens] = SamplingParams(
                max_tokens=record.max_tokens, ignore_eos=True
            )
        runs = self.prompts.runs(record)
        tokens = self.prompts.token_ids(runs)
        request = Request(rid, tokens, params, arrival_time=self.loop.clock.now)
        request.block_hashes = self.prompts.kv_hashes(runs, tokens)
        self.scheduler.add_request(request)
        self.records[rid] = record
        if not self._stepping:
            self._stepping = True
            self.loop.after(0.0, self._step)

    def settle(self) -> None:
        """Apply the steps of a stretch that have ended by now (see stretch.py)."""
        stretch = self._stretch
        if stretch is None:
            return
        ended = min(bisect.bisect_right(stretch.ends, self.loop.clock.now), stretch.last)
        if ended <= stretch.done:
            return
        # the scheduler's own run of these single steps (update_from_output, then schedule)
        self._plan = self.scheduler.run_decodes(self._plan, stretch.sampled, ended - stretch.done)
        for duration in stretch.durations[stretch.done + 1 : ended + 1]:
            self.busy_s += duration
        self.steps += ended - stretch.done
        stretch.done = ended

    def _cut(self) -> None:
        """End the stretch with the step in progress (its plan stands, as the engine's would)."""
        stretch = self._stretch
        if stretch is None:
            return
        self._stretch = None
        self._sampled, self._prefilling = stretch.sampled, []
        if stretch.done < stretch.last:
            self._turn += 1
            self.loop.at(stretch.ends[stretch.done], functools.partial(self._end, self._turn))

    def reset_prefix_cache(self) -> None:
        """What the engine's sleep does to its cache: the KV memory is freed."""
        self.settle()
        self.kv.reset_prefix_cache()

    def kill(self) -> list[RequestRecord]:
        """The process is gone: nothing more happens here. Returns the requests it held."""
        self.settle()
        self._turn += 1  # every pending event of this replica is now stale
        self._stretch, self._stepping, self._killed = None, False, True
        lost = list(self.records.values())
        self.records.clear()
        return lost

    # -- steps --------------------------------------------------------------------------------

    def _step(self) -> None:
        if self._killed:
            return
        plan = self.scheduler.schedule()
        if not plan:
            self._stepping = False
            if not self.records:
                self.events.empty(self)
            return
        prefill, decodes, context, prefilling, sampled = _step_load(plan)
        now = self.loop.clock.now
        steps = 1
        if self._stretches and not prefill:
            steps = stretch_steps(self.scheduler, plan, self.max_model_len)
        self._plan, self._turn = plan, self._turn + 1
        if steps > 1:
            stretch = self._stretch = plan_stretch(self.step_time, plan, steps, now, context)
            self.busy_s += stretch.durations[0]
            end = stretch.ends[-1]
        else:
            duration = self.step_time.step_s(prefill, decodes, context)
            self._sampled, self._prefilling = sampled, prefilling
            self.busy_s += duration
            end = now + duration
        self.steps += 1
        self.loop.at(end, functools.partial(self._end, self._turn))

    def _end(self, turn: int) -> None:
        if turn != self._turn:
            return
        if self._stretch is not None:
            self.settle()
            self._cut()  # the last step is in progress: it ends now, as a plain step
        finished = self.scheduler.update_from_output(self._plan, self._sampled)
        now = self.loop.clock.now
        for request in self._prefilling:
            if request.first_token_time is None:
                continue
            record = self.records.get(request.request_id)
            if record is not None and record.first_token_s is None:
                record.first_token_s = now
                record.cached_tokens = request.num_cached_tokens
                self.events.first_token(self, record)
        for request in finished:
            record = self.records.pop(request.request_id)
            record.finish_s = now
            record.output_tokens = request.num_output_tokens
            record.outcome = "finished"
            self.events.finished(self, record)
        self._step()


def _step_load(plan: SchedulerOutput) -> tuple[int, int, float, list[Request], dict[str, int]]:
    """(prompt tokens, generating sequences, their mean context, the requests computing their
    prompt, the tokens the step samples) of a step's plan, in one pass over it. A chunk that
    reaches the end of its request's known tokens samples one (the engine's rule)."""
    prefill, decodes, context = 0, 0, 0
    prefilling = []
    sampled: dict[str, int] = {}
    for request, n in zip(plan.requests, plan.num_tokens, strict=True):
        computed = request.num_computed_tokens
        if n == 1 and computed >= request.num_prompt_tokens:
            decodes += 1
            context += computed
        else:
            prefill += n
            prefilling.append(request)
        if computed + n == len(request.all_token_ids):
            sampled[request.request_id] = SAMPLED_TOKEN
    return prefill, decodes, context / decodes if decodes else 0.0, prefilling, sampled
