"""One simulated engine replica: the real scheduler and KV cache, a step-time model for the
forward pass.

Each step asks the engine's Scheduler for its plan, takes the step's duration from the
StepTimeModel, and when that time has passed applies the plan with `update_from_output`, as
the engine does after its runner returns. A chunk that reaches the end of its request's known
tokens samples a token (the engine's rule); the token id is always the same, and requests run
with ignore_eos and max_tokens = the trace's output length, so they stop on length alone.

Prompts are one token id repeated, a different id per request: no two requests share a
cached block by accident (the trace carries no prefix information).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from inferplane.engine.core.kv_cache import KVCacheManager
from inferplane.engine.core.request import Request
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.engine.core.scheduler import Scheduler, SchedulerConfig, SchedulerOutput
from inferplane.sim.events import EventLoop
from inferplane.sim.latency import StepTimeModel
from inferplane.sim.records import RequestRecord

ReplicaPhase = Literal["starting", "ready", "draining", "sleeping", "stopped"]
_SAMPLED_TOKEN = 1


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
    ) -> None:
        self.name = name
        self.id = replica_id
        self.shape = shape
        self.step_time = step_time
        self.loop = loop
        self.events = events
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
        self._stepping = False

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
        if self.scheduler.num_waiting >= self.shape.max_waiting:
            return f"429 queue_full: {self.scheduler.num_waiting} requests waiting"
        return None

    def add(self, record: RequestRecord) -> None:
        """Queue the request in the scheduler and start stepping if the engine was idle."""
        rid = str(record.index)
        params = SamplingParams(max_tokens=record.max_tokens, ignore_eos=True)
        prompt = [record.index + 2] * record.prompt_tokens  # 0, 1 are never a prompt's token
        self.scheduler.add_request(Request(rid, prompt, params, arrival_time=self.loop.clock.now))
        self.records[rid] = record
        if not self._stepping:
            self._stepping = True
            self.loop.after(0.0, self._step)

    def _step(self) -> None:
        plan = self.scheduler.schedule()
        if not plan:
            self._stepping = False
            if not self.records:
                self.events.empty(self)
            return
        sampled = _sampled(plan)
        duration = self.step_time.step_s(*_step_load(plan))
        self.busy_s += duration
        self.steps += 1
        self.loop.after(duration, lambda: self._finish_step(plan, sampled))

    def _finish_step(self, plan: SchedulerOutput, sampled: dict[str, int]) -> None:
        finished = self.scheduler.update_from_output(plan, sampled)
        now = self.loop.clock.now
        for request in plan.requests:
            record = self.records[request.request_id]
            if record.first_token_s is None and request.first_token_time is not None:
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


def _sampled(plan: SchedulerOutput) -> dict[str, int]:
    """Chunks that reach the end of their request's known tokens sample one (the engine's rule)."""
    return {
        r.request_id: _SAMPLED_TOKEN
        for r, n in zip(plan.requests, plan.num_tokens, strict=True)
        if r.num_computed_tokens + n == r.num_tokens
    }


def _step_load(plan: SchedulerOutput) -> tuple[int, int, float]:
    """(prompt tokens, generating sequences, their mean context) of a step's plan."""
    prefill, decodes, context = 0, 0, 0
    for request, n in zip(plan.requests, plan.num_tokens, strict=True):
        if n == 1 and request.num_computed_tokens >= request.num_prompt_tokens:
            decodes += 1
            context += request.num_computed_tokens
        else:
            prefill += n
    return prefill, decodes, context / decodes if decodes else 0.0
