"""Decode stretches: many engine steps behind one event, with the same outcome step by step.

When a step's plan is decode only (every running request computes one token, none waits to be
admitted, nothing was preempted), the next steps are known in advance until something changes:
each is the same requests, one token each, and its duration follows from the step-time model
at a context one token longer. Nothing changes before the first of these requests finishes
(max_tokens or max_model_len; the simulator's requests never stop on a token), unless the KV
cache runs out of free blocks (a preemption), or the gateway sends the replica a request.

So a stretch schedules one event at the end of its last step instead of one per step. Its
steps are applied by the real Scheduler, at the latest when the stretch ends, or earlier when
someone needs the replica as it is at some moment (a scrape reads its queue, a request
arrives, it crashes): SimReplica.settle applies every step that has ended by then with
Scheduler.run_decodes, which does what that many rounds of update_from_output and schedule
do (the same blocks taken and registered in the same order; its tests compare the two), and
the stretch's last step, where requests finish, is a plain update_from_output. An arrival cuts
the stretch at the step in progress, whose plan (made before the request arrived, as the
engine's was) runs to its end as usual.
"""

from dataclasses import dataclass

from inferplane.engine.core.kv_cache import KVCacheManager
from inferplane.engine.core.scheduler import Scheduler, SchedulerOutput
from inferplane.sim.latency import StepTimeModel


@dataclass(slots=True)
class Stretch:
    """Steps planned in advance: `ends[i]` is when step i ends (step 0 is in progress first).
    `done` counts the steps applied; the one in progress is step `done`."""

    ends: list[float]
    durations: list[float]
    sampled: dict[str, int]
    decodes: int
    done: int = 0

    @property
    def last(self) -> int:
        return len(self.ends) - 1


def stretch_steps(scheduler: Scheduler, plan: SchedulerOutput, max_model_len: int) -> int:
    """How many steps, this plan's included, run as this one does (1: the next may differ).
    The plan is decode only: every request computes one token past its prompt."""
    running = scheduler.running
    if plan.preempted or len(plan.requests) != len(running):
        return 1  # a preemption, or a budget too small for every running request
    if scheduler.num_waiting and len(running) < scheduler.config.max_num_seqs:
        return 1  # a waiting request is admitted as soon as blocks allow
    steps = max_model_len
    for request in plan.requests:  # comparisons, not min(): this runs per request per step
        left = request.params.max_tokens - len(request.output_token_ids)
        left_in_context = max_model_len - len(request.all_token_ids)
        if left_in_context < left:  # noqa: PLR1730
            left = left_in_context
        if left < steps:  # noqa: PLR1730
            steps = left
    return max(1, min(steps, _steps_with_free_blocks(scheduler.kv, plan, steps)))


def _steps_with_free_blocks(kv: KVCacheManager, plan: SchedulerOutput, steps: int) -> int:
    """The most steps (up to `steps`) whose new KV blocks the free queue holds: beyond that
    the scheduler would preempt."""
    size, free = kv.block_size, kv.pool.num_free
    if len(plan.requests) * ((steps - 1) // size + 1) <= free:
        return steps  # the most any request can take in `steps` steps fits: no need to count
    computed = [r.num_computed_tokens for r in plan.requests]

    def need(count: int) -> int:  # blocks taken by steps 2..count (step 1 has its slots)
        return sum((c + count - 1) // size - c // size for c in computed)

    if need(steps) <= free:
        return steps
    low, high = 1, steps  # need(low) <= free < need(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if need(middle) <= free else (low, middle)
    return low


def plan_stretch(
    step_time: StepTimeModel, plan: SchedulerOutput, steps: int, start: float, context: float
) -> Stretch:
    """The stretch of `steps` decode steps from `plan` on (mean context `context`), starting
    at `start`."""
    decodes = len(plan.requests)
    durations = step_time.decode_steps_s(decodes, context, steps)
    ends, at = [], start
    for duration in durations:
        at += duration
        ends.append(at)
    sampled = dict.fromkeys([r.request_id for r in plan.requests], 1)
    return Stretch(ends, durations, sampled, decodes)
