"""Which requests compute how many tokens in the next step. No torch: the simulator reuses it.

One rule: every request wants `num_tokens - num_computed_tokens` more tokens. Each step has a
token budget (`max_num_batched_tokens`) and a cap on running requests (`max_num_seqs`).
Running requests are served first (mostly decodes of one token), then waiting ones, whose
prompts are cut to what is left of the budget (chunked prefill). Prefix-cache hits count as
computed. When KV blocks run out, the lowest-priority running request (the latest under FCFS)
is preempted: its blocks are freed and it goes back to the front of the queue to be
recomputed later.
"""

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from inferplane.engine.core.kv_cache import KVCacheManager
from inferplane.engine.core.request import Request, RequestStatus

Clock = Callable[[], float]
Policy = Literal["fcfs", "priority"]


@dataclass(frozen=True)
class SchedulerConfig:
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 2048
    max_model_len: int = 2048
    policy: Policy = "fcfs"

    def __post_init__(self) -> None:
        if self.max_num_seqs < 1:
            raise ValueError(f"max_num_seqs must be >= 1, got {self.max_num_seqs}")
        if self.max_num_batched_tokens < 1:
            raise ValueError("max_num_batched_tokens must be >= 1")
        if self.max_model_len < 1:
            raise ValueError(f"max_model_len must be >= 1, got {self.max_model_len}")
        if self.policy not in ("fcfs", "priority"):
            raise ValueError(f"policy must be 'fcfs' or 'priority', got {self.policy!r}")


@dataclass(slots=True)
class SchedulerOutput:
    """This step's plan: `requests[i]` computes `num_tokens[i]` tokens from its
    num_computed_tokens on. `preempted` lists requests sent back to the queue this step."""

    requests: list[Request] = field(default_factory=list)
    num_tokens: list[int] = field(default_factory=list)
    preempted: list[str] = field(default_factory=list)

    @property
    def num_scheduled_tokens(self) -> dict[str, int]:
        return {r.request_id: n for r, n in zip(self.requests, self.num_tokens, strict=True)}

    @property
    def total_tokens(self) -> int:
        return sum(self.num_tokens)

    def __bool__(self) -> bool:
        return bool(self.requests)


class WaitingQueue:
    """FCFS: a deque. Priority: a heap on (priority, arrival); a preempted request keeps its
    original place, which puts it ahead of later arrivals of the same priority."""

    def __init__(self, policy: Policy) -> None:
        self._fifo: deque[Request] | None = deque() if policy == "fcfs" else None
        self._heap: list[tuple[int, float, int, Request]] = []
        self._seq = itertools.count()

    def push(self, request: Request, front: bool = False) -> None:
        if self._fifo is None:
            key = (request.priority, request.arrival_time, next(self._seq), request)
            heapq.heappush(self._heap, key)
        elif front:
            self._fifo.appendleft(request)
        else:
            self._fifo.append(request)

    def peek(self) -> Request:
        return self._fifo[0] if self._fifo is not None else self._heap[0][3]

    def pop(self) -> Request:
        return self._fifo.popleft() if self._fifo is not None else heapq.heappop(self._heap)[3]

    def remove(self, request: Request) -> None:
        if self._fifo is not None:
            self._fifo.remove(request)
            return
        self._heap = [item for item in self._heap if item[3] is not request]
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._fifo) if self._fifo is not None else len(self._heap)

    def __iter__(self) -> Iterator[Request]:
        if self._fifo is not None:
            return iter(self._fifo)
        return (item[3] for item in sorted(self._heap))


class Scheduler:
    """Owns the waiting queue and the running list; the engine drives it once per step."""

    def __init__(self, config: SchedulerConfig, kv: KVCacheManager, clock: Clock) -> None:
        self.config = config
        self.kv = kv
        self.clock = clock
        self.waiting = WaitingQueue(config.policy)
        self.running: list[Request] = []
        self.requests: dict[str, Request] = {}
        self.num_preemptions = 0

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def num_running(self) -> int:
        return len(self.running)

    def has_unfinished(self) -> bool:
        return bool(self.requests)

    def add_request(self, request: Request) -> None:
        if request.request_id in self.requests:
            raise ValueError(f"request id {request.request_id!r} is already in use")
        request.status = RequestStatus.WAITING
        self.requests[request.request_id] = request
        self.waiting.push(request)

    def abort_request(self, request_id: str) -> Request | None:
        return self.finish_request(request_id, RequestStatus.FINISHED_ABORTED)

    def finish_request(self, request_id: str, status: RequestStatus) -> Request | None:
        """End a request now (abort, or a stop string the detokenizer found): its blocks are
        freed at once. Returns the request, or None when it is unknown or already done."""
        request = self.requests.pop(request_id, None)
        if request is None:
            return None
        if request.status is RequestStatus.RUNNING:
            self.running.remove(request)
        else:
            self.waiting.remove(request)
        request.status = status
        self.kv.free(request_id)
        return request

    def schedule(self) -> SchedulerOutput:
        out = SchedulerOutput()
        budget = self._schedule_running(out, self.config.max_num_batched_tokens)
        if not out.preempted:
            self._schedule_waiting(out, budget)
        return out

    def _schedule_running(self, out: SchedulerOutput, budget: int) -> int:
        if self.config.policy == "priority":
            self.running.sort(key=_priority_key)
        running, allocate, slots = self.running, self.kv.allocate_slots, self.kv.slots
        add_request, add_tokens = out.requests.append, out.num_tokens.append
        i = 0
        # The hot loop of every step (and of the simulator): locals, no min(), no properties.
        while i < len(running) and budget > 0:
            request = running[i]
            n = len(request.all_token_ids) - request.num_computed_tokens
            if n > budget:  # noqa: PLR1730 (min() is a call; this runs per request per step)
                n = budget
            fits = request.num_computed_tokens + n <= slots.get(request.request_id, 0)
            if not fits and not allocate(request, n) and not self._preempt_for(request, n, out):
                break  # the request preempted itself: everything behind it is gone too
            add_request(request)
            add_tokens(n)
            budget -= n
            i += 1
        return budget

    def _preempt_for(self, request: Request, n: int, out: SchedulerOutput) -> bool:
        """Preempt from the back of the running list until `request` fits; False when
        `request` itself was the one preempted."""
        while True:
            victim = self.running[-1]
            self._preempt(victim, out)
            if victim is request:
                return False
            if self.kv.allocate_slots(request, n):
                return True

    def _preempt(self, request: Request, out: SchedulerOutput) -> None:
        self.running.pop()
        self.kv.free(request.request_id)
        request.status = RequestStatus.PREEMPTED
        request.num_computed_tokens = 0
        request.num_preemptions += 1
        self.num_preemptions += 1
        self.waiting.push(request, front=True)
        out.preempted.append(request.request_id)

    def _schedule_waiting(self, out: SchedulerOutput, budget: int) -> None:
        waiting, kv = self.waiting, self.kv
        while waiting and budget > 0 and len(self.running) < self.config.max_num_seqs:
            request = waiting.peek()
            hits, num_hit = kv.get_computed_blocks(request)
            n = min(request.num_tokens - num_hit, budget)
            if not self._admit(request, n, hits, num_hit):
                break  # no room: wait for blocks to free up, keeping arrival order
            waiting.pop()
            out.requests.append(request)
            out.num_tokens.append(n)
            budget -= n

    def _admit(self, request: Request, n: int, hits: list[int], num_hit: int) -> bool:
        if not self.kv.allocate_slots(request, n, hits):
            return False
        if request.num_preemptions == 0:
            self.kv.record_prefix_query(request.num_tokens, num_hit)
            request.num_cached_tokens = num_hit
        request.num_computed_tokens = num_hit
        request.status = RequestStatus.RUNNING
        self.running.append(request)
        return True

    def update_from_output(self, out: SchedulerOutput, sampled: dict[str, int]) -> list[Request]:
        """Advance the requests that ran, append their sampled tokens and finish those that
        hit EOS, a stop token, max_tokens or max_model_len. Returns the finished requests."""
        finished: list[Request] = []
        cache_blocks, now = self.kv.cache_full_blocks, None
        size, max_len = self.kv.block_size, self.config.max_model_len
        running, token_for = RequestStatus.RUNNING, sampled.get
        for request, n in zip(out.requests, out.num_tokens, strict=True):
            if request.status is not running:
                continue  # aborted or preempted while the step ran
            computed = request.num_computed_tokens + n
            request.num_computed_tokens = computed
            if computed % size < n:  # a block boundary was crossed: a block filled up
                cache_blocks(request)
            token = token_for(request.request_id)
            if token is None:
                continue
            if request.first_token_time is None:
                now = self.clock() if now is None else now
                request.first_token_time = now
            outputs, all_ids = request.output_token_ids, request.all_token_ids
            outputs.append(token)  # request.append_output, inlined: once per token
            all_ids.append(token)
            # _check_stop's conditions, tested here first: most tokens stop nothing
            if (
                token in request.stop_ids
                or len(outputs) >= request.params.max_tokens
                or len(all_ids) >= max_len
            ) and self._check_stop(request, token):
                finished.append(request)
        if finished:
            self._retire(finished)
        return finished

    def run_decodes(
        self, out: SchedulerOutput, sampled: dict[str, int], steps: int
    ) -> SchedulerOutput:
        """What `steps` rounds of update_from_output(out, sampled) then schedule() do, at once,
        for a plan in which every running request decodes one token and nothing can interrupt
        the rounds: no waiting request can be admitted, no request stops, and the free blocks
        cover every block the rounds take. Returns the plan schedule() would return last.

        The bookkeeping happens only where a step changes the cache: a block fills (it is
        registered) or a request needs one more (it takes one), in the order the single steps
        would do it (step by step; within a step, registrations in plan order, then
        allocations in running order), so the same blocks hold the same content. ValueError,
        changing nothing, when the plan or the scheduler's state does not allow it."""
        self._check_decode_run(out, steps)
        events, start = self._decode_events(out, sampled, steps)
        requests = out.requests
        for request, computed in zip(requests, start, strict=True):
            tokens = [sampled[request.request_id]] * steps
            request.output_token_ids += tokens  # append_output, `steps` times
            request.all_token_ids += tokens
            request.num_computed_tokens = computed + steps
        kv = self.kv
        events.sort()
        for step, kind, index in events:  # each at the round it happens in, then back
            request, computed = requests[index], start[index]
            request.num_computed_tokens = computed + step
            if kind == 0:
                kv.cache_full_blocks(request)
            elif not kv.allocate_slots(request, 1):  # unreachable: the free blocks were counted
                raise RuntimeError("the free blocks ran out inside a decode run")
            request.num_computed_tokens = computed + steps
        return SchedulerOutput(list(self.running), [1] * len(self.running))

    def _check_decode_run(self, out: SchedulerOutput, steps: int) -> None:
        if steps < 1 or out.preempted or out.requests != self.running:
            raise ValueError("a decode run needs steps >= 1 and a plan of every running request")
        if out.num_tokens.count(1) != len(out.num_tokens):
            raise ValueError("a decode run's plan computes one token per request")
        if len(self.running) > self.config.max_num_batched_tokens:
            raise ValueError("a decode run needs a token budget for every running request")
        if self.waiting and len(self.running) < self.config.max_num_seqs:
            raise ValueError("a decode run cannot start while a waiting request may be admitted")

    def _decode_events(
        self, out: SchedulerOutput, sampled: dict[str, int], steps: int
    ) -> tuple[list[tuple[int, int, int]], list[int]]:
        """(round, 0 for a block filled / 1 for a block taken, index in the plan) of every
        change to the cache within `steps` rounds, and each request's computed tokens now."""
        size, slots, max_len = self.kv.block_size, self.kv.slots, self.config.max_model_len
        events: list[tuple[int, int, int]] = []
        start: list[int] = []
        need, last = 0, steps + 1
        for index, request in enumerate(out.requests):
            rid = request.request_id
            token = sampled.get(rid)
            if token is None or request.first_token_time is None:
                raise ValueError(f"request {rid} is not decoding")
            if (
                token in request.stop_ids
                or len(request.output_token_ids) + steps >= request.params.max_tokens
                or len(request.all_token_ids) + steps >= max_len
            ):
                raise ValueError(f"request {rid} stops within {steps} steps")
            computed = request.num_computed_tokens
            start.append(computed)
            fills = size - computed % size  # the first round after which a block is full
            if fills < last:  # most runs are shorter than a block: most requests have no event
                events += [(j, 0, index) for j in range(fills, last, size)]
            grows = slots.get(rid, 0) - computed  # the first round that takes one
            if grows < 1:
                raise ValueError(f"request {rid} holds no slot for its step")
            if grows < last:
                taken = range(grows, last, size)
                events += [(j, 1, index) for j in taken]
                need += len(taken)
        if need > self.kv.pool.num_free:
            raise ValueError(f"a decode run of {steps} steps needs {need} free KV blocks")
        return events, start

    def _check_stop(self, request: Request, token: int) -> bool:
        if token in request.stop_ids:
            request.status = RequestStatus.FINISHED_STOPPED
            if token in request.params.stop_token_ids:
                request.stop_reason = token
        elif (
            len(request.output_token_ids) >= request.params.max_tokens
            or len(request.all_token_ids) >= self.config.max_model_len
        ):
            request.status = RequestStatus.FINISHED_LENGTH
        else:
            return False
        return True

    def _retire(self, finished: Iterable[Request]) -> None:
        for request in finished:
            self.requests.pop(request.request_id, None)
            self.kv.free(request.request_id)
        self.running = [r for r in self.running if r.status is RequestStatus.RUNNING]

    def preempt_all(self) -> list[str]:
        """Send every running request back to the queue (the engine is going to sleep)."""
        out = SchedulerOutput()
        while self.running:
            self._preempt(self.running[-1], out)
        return out.preempted


def _priority_key(request: Request) -> tuple[int, float]:
    return request.priority, request.arrival_time
