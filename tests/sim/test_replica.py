import pytest

from inferplane.sim.clock import SimClock
from inferplane.sim.events import EventLoop
from inferplane.sim.latency import LinearStepTime
from inferplane.sim.records import RequestRecord
from inferplane.sim.replica import ReplicaEvents, ReplicaShape, SimReplica


class Harness:
    """One replica on its own loop, noting the events it reports."""

    def __init__(self, step: LinearStepTime, **shape: int) -> None:
        self.loop = EventLoop(SimClock())
        self.firsts: list[tuple[int, float]] = []
        self.done: list[tuple[int, float]] = []
        self.empties: list[float] = []
        events = ReplicaEvents(
            lambda _, r: self.firsts.append((r.index, self.loop.clock.now)),
            lambda _, r: self.done.append((r.index, self.loop.clock.now)),
            lambda _: self.empties.append(self.loop.clock.now),
        )
        replica_shape = ReplicaShape(**{"num_blocks": 256, **shape})
        self.replica = SimReplica("r0", "pool/r0", replica_shape, step, self.loop, events)

    def arrive(self, at: float, index: int, prompt: int, out: int) -> RequestRecord:
        record = RequestRecord(index, at, prompt, out)
        self.loop.at(at, lambda: self.replica.add(record))
        return record


def _rounded(events: list[tuple[int, float]]) -> list[tuple[int, float]]:
    return [(index, round(at, 9)) for index, at in events]


def test_one_request_one_token_per_step() -> None:
    h = Harness(LinearStepTime(base_s=0.01))
    record = h.arrive(0.0, 0, prompt=32, out=3)
    h.loop.run()
    assert _rounded(h.firsts) == [(0, 0.01)]
    assert _rounded(h.done) == [(0, 0.03)]
    assert record.output_tokens == 3 and record.outcome == "finished"
    assert record.ttft_s == pytest.approx(0.01) and record.latency_s == pytest.approx(0.03)
    assert [round(t, 9) for t in h.empties] == [0.03] and h.replica.steps == 3


def test_chunked_prefill_costs_per_prompt_token() -> None:
    # budget 16 tokens a step: a 40-token prompt takes 16 + 16 + 8, then one decode step
    h = Harness(LinearStepTime(base_s=0.01, per_prompt_token_s=0.001), max_num_batched_tokens=16)
    h.arrive(0.0, 0, prompt=40, out=2)
    h.loop.run()
    assert _rounded(h.firsts) == [(0, 0.07)]  # 0.026 + 0.026 + 0.018
    assert _rounded(h.done) == [(0, 0.08)]


def test_a_late_arrival_joins_the_next_step() -> None:
    h = Harness(LinearStepTime(base_s=0.01))
    h.arrive(0.0, 0, prompt=10, out=5)
    late = h.arrive(0.015, 1, prompt=10, out=1)  # during A's second step (0.01 -> 0.02)
    h.loop.run()
    assert _rounded(h.firsts) == [(0, 0.01), (1, 0.03)]
    assert _rounded(h.done) == [(1, 0.03), (0, 0.05)]
    assert late.ttft_s == pytest.approx(0.015)


def test_too_few_kv_blocks_preempt_and_still_finish() -> None:
    # 4 blocks of 16 slots: two 24-token prompts fit, but not both grown to 40 tokens
    h = Harness(LinearStepTime(base_s=0.01), num_blocks=4, max_model_len=64)
    first = h.arrive(0.0, 0, prompt=24, out=16)
    second = h.arrive(0.0, 1, prompt=24, out=16)
    h.loop.run()
    assert first.output_tokens == second.output_tokens == 16
    assert h.replica.scheduler.num_preemptions > 0


def test_refusals_say_what_the_server_would() -> None:
    h = Harness(LinearStepTime(), num_blocks=8, max_waiting=1)
    assert h.replica.max_model_len == 128  # capped by what the cache holds
    refusal = h.replica.refusal(RequestRecord(0, 0.0, 200, 1))
    assert refusal is not None and refusal.startswith("400 context_length_exceeded")
    h.replica.add(RequestRecord(1, 0.0, 10, 1))
    refusal = h.replica.refusal(RequestRecord(2, 0.0, 10, 1))
    assert refusal is not None and refusal.startswith("429")
