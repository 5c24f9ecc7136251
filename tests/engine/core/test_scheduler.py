import random

import pytest

from inferplane.engine.core.kv_cache import KVCacheManager
from inferplane.engine.core.request import Request, RequestStatus
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.engine.core.scheduler import Policy, Scheduler, SchedulerConfig, SchedulerOutput

BS = 4


def make_scheduler(
    num_blocks: int = 64,
    *,
    seqs: int = 8,
    budget: int = 32,
    max_len: int = 64,
    policy: Policy = "fcfs",
) -> Scheduler:
    config = SchedulerConfig(
        max_num_seqs=seqs, max_num_batched_tokens=budget, max_model_len=max_len, policy=policy
    )
    return Scheduler(config, KVCacheManager(num_blocks, BS), clock=lambda: 1.5)


def req(rid: str, n: int = 6, max_tokens: int = 4, priority: int = 0, **kw: object) -> Request:
    params = SamplingParams(max_tokens=max_tokens, **kw)  # type: ignore[arg-type]
    prompt = [(hash(rid) + i) % 1000 + 10 for i in range(n)]
    return Request(rid, prompt, params, arrival_time=0.0, priority=priority, eos_token_ids=[2])


def run_step(sched: Scheduler, token: int = 7) -> tuple[SchedulerOutput, list[Request]]:
    """Execute a step the way the engine does: sample where a chunk reaches the end."""
    out = sched.schedule()
    sampled = {
        r.request_id: token
        for r, n in zip(out.requests, out.num_tokens, strict=True)
        if r.num_computed_tokens + n == r.num_tokens
    }
    return out, sched.update_from_output(out, sampled)


def test_prefill_then_decode_share_one_rule() -> None:
    sched = make_scheduler()
    sched.add_request(req("a", n=6))
    out, _ = run_step(sched)
    assert out.num_scheduled_tokens == {"a": 6}
    sched.add_request(req("b", n=5))
    out, _ = run_step(sched)
    assert out.num_scheduled_tokens == {"a": 1, "b": 5}  # a decodes while b prefills
    a = sched.requests["a"]
    assert a.num_computed_tokens == 7
    assert a.output_token_ids == [7, 7]
    assert a.first_token_time == 1.5


def test_chunked_prefill_respects_the_budget() -> None:
    sched = make_scheduler(budget=8)
    sched.add_request(req("long", n=20))
    sched.add_request(req("short", n=3))
    plans = [run_step(sched)[0].num_scheduled_tokens for _ in range(3)]
    assert plans[0] == {"long": 8}
    assert plans[1] == {"long": 8}
    assert plans[2] == {"long": 4, "short": 3}
    assert sched.requests["long"].output_token_ids == [7]
    assert sched.requests["short"].output_token_ids == [7]


def test_max_num_seqs_caps_running() -> None:
    sched = make_scheduler(seqs=2)
    for rid in "abc":
        sched.add_request(req(rid))
    out, _ = run_step(sched)
    assert set(out.num_scheduled_tokens) == {"a", "b"}
    assert sched.num_waiting == 1
    assert sched.num_running == 2


def test_finishes_on_max_tokens_eos_and_stop_tokens() -> None:
    sched = make_scheduler()
    sched.add_request(req("len", max_tokens=2, ignore_eos=True))
    sched.add_request(req("eos"))
    sched.add_request(req("stop", stop_token_ids=(9,), ignore_eos=True))
    sched.add_request(req("ignore", ignore_eos=True, max_tokens=1))
    _, finished = run_step(sched, token=2)
    assert {r.request_id: r.status for r in finished} == {
        "eos": RequestStatus.FINISHED_STOPPED,
        "ignore": RequestStatus.FINISHED_LENGTH,
    }
    assert finished[0].stop_reason is None
    _, finished = run_step(sched, token=5)
    assert [(r.request_id, r.status) for r in finished] == [("len", RequestStatus.FINISHED_LENGTH)]
    _, finished = run_step(sched, token=9)
    assert finished[0].stop_reason == 9
    assert finished[0].status is RequestStatus.FINISHED_STOPPED
    assert not sched.has_unfinished()
    assert sched.kv.usage == 0.0


def test_finishes_at_max_model_len() -> None:
    sched = make_scheduler(max_len=8)
    sched.add_request(req("a", n=6, max_tokens=100))
    run_step(sched)
    _, finished = run_step(sched)
    assert finished[0].status is RequestStatus.FINISHED_LENGTH
    assert finished[0].num_tokens == 8


def test_preemption_frees_blocks_and_recomputes() -> None:
    sched = make_scheduler(num_blocks=4)
    sched.add_request(req("a", n=8, max_tokens=8))
    sched.add_request(req("b", n=7, max_tokens=8))
    run_step(sched)  # two blocks each; a's first output needs a third
    assert sched.kv.usage == 1.0
    out, _ = run_step(sched)  # a needs a 3rd block: b (the latest) is preempted
    assert out.preempted == ["b"]
    assert out.num_scheduled_tokens == {"a": 1}
    b = sched.requests["b"]
    assert (b.status, b.num_computed_tokens, b.num_preemptions) == (RequestStatus.PREEMPTED, 0, 1)
    assert sched.num_preemptions == 1
    assert next(iter(sched.waiting)) is b
    while "a" in sched.requests:
        run_step(sched)
    out, _ = run_step(sched)
    assert out.num_scheduled_tokens == {"b": 8}  # prompt + its one output, recomputed
    assert b.output_token_ids == [7, 7]


def test_a_lone_request_that_cannot_fit_preempts_itself() -> None:
    sched = make_scheduler(num_blocks=2, max_len=64)
    sched.add_request(req("a", n=8, max_tokens=8))
    run_step(sched)
    out, _ = run_step(sched)
    assert out.preempted == ["a"]
    assert not out
    assert sched.kv.usage == 0.0


def test_waiting_request_waits_for_blocks_in_order() -> None:
    sched = make_scheduler(num_blocks=3)
    sched.add_request(req("a", n=8, max_tokens=2))
    sched.add_request(req("b", n=8, max_tokens=2))
    sched.add_request(req("c", n=1, max_tokens=2))
    out, _ = run_step(sched)
    assert out.num_scheduled_tokens == {"a": 8}  # b does not fit; c must not jump ahead


def test_prefix_hits_count_as_computed() -> None:
    sched = make_scheduler()
    first = req("a", n=10, max_tokens=1)
    sched.add_request(first)
    run_step(sched)
    second = Request("b", [*first.prompt_token_ids[:8], 1, 1], SamplingParams(max_tokens=1))
    sched.add_request(second)
    out, _ = run_step(sched)
    assert out.num_scheduled_tokens == {"b": 2}
    assert second.num_cached_tokens == 8
    stats = sched.kv.stats()
    assert (stats.prefix_queries, stats.prefix_hits) == (20, 8)


def test_abort_frees_blocks_at_once() -> None:
    sched = make_scheduler()
    sched.add_request(req("a"))
    sched.add_request(req("b"))
    run_step(sched)
    assert sched.abort_request("a") is not None
    assert sched.abort_request("b") is not None
    assert sched.abort_request("b") is None
    assert sched.kv.usage == 0.0
    sched.add_request(req("w"))
    assert sched.abort_request("w") is not None
    assert sched.num_waiting == 0


def test_abort_during_a_step_is_skipped_on_update() -> None:
    sched = make_scheduler()
    sched.add_request(req("a"))
    out = sched.schedule()
    sched.abort_request("a")
    assert sched.update_from_output(out, {"a": 3}) == []


def test_priority_policy_orders_waiting_and_picks_victims() -> None:
    sched = make_scheduler(num_blocks=4, seqs=1, policy="priority")
    sched.add_request(req("low", priority=5))
    sched.add_request(req("high", priority=-1))
    out, _ = run_step(sched)
    assert out.num_scheduled_tokens == {"high": 6}
    sched = make_scheduler(num_blocks=4, policy="priority")
    sched.add_request(req("low", n=8, priority=5, max_tokens=8))
    sched.add_request(req("high", n=7, priority=1, max_tokens=8))
    run_step(sched)
    out, _ = run_step(sched)
    assert out.preempted == ["low"]


def test_preempt_all_and_duplicate_ids() -> None:
    sched = make_scheduler()
    sched.add_request(req("a"))
    sched.add_request(req("b"))
    run_step(sched)
    assert sorted(sched.preempt_all()) == ["a", "b"]
    assert sched.kv.usage == 0.0
    assert [r.request_id for r in sched.waiting] == ["a", "b"]
    with pytest.raises(ValueError, match="already in use"):
        sched.add_request(req("a"))


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="max_num_seqs"):
        SchedulerConfig(max_num_seqs=0)
    with pytest.raises(ValueError, match="policy"):
        SchedulerConfig(policy="lifo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_model_len"):
        SchedulerConfig(max_model_len=0)
    with pytest.raises(ValueError, match="max_num_batched_tokens"):
        SchedulerConfig(max_num_batched_tokens=0)


def check_invariants(sched: Scheduler) -> None:
    pool = sched.kv.pool
    refs: dict[int, int] = {}
    for request in sched.running:
        for block_id in sched.kv.block_ids(request.request_id):
            refs[block_id] = refs.get(block_id, 0) + 1
    for request in sched.waiting:
        assert sched.kv.block_ids(request.request_id) == []
    assert {b: count for b, count in enumerate(pool.ref_counts) if count} == refs
    assert sorted(pool.free_block_ids()) == [
        b for b, count in enumerate(pool.ref_counts) if not count
    ]
    assert pool.num_free == len(pool.free_block_ids())
    assert all(pool.hashes[block] == h for h, block in pool.cached.items())
    assert sum(h is not None for h in pool.hashes) == len(pool.cached)
    assert len(sched.running) <= sched.config.max_num_seqs


@pytest.mark.parametrize("policy", ["fcfs", "priority"])
def test_random_workload_keeps_block_accounting_exact(policy: Policy) -> None:
    rng = random.Random(7)
    sched = make_scheduler(num_blocks=24, seqs=6, budget=16, max_len=64, policy=policy)
    shared = [5, 6, 7, 8, 9, 10, 11, 12]
    next_id = 0
    for step in range(600):
        if rng.random() < 0.3:
            prompt = (shared if rng.random() < 0.5 else []) + [
                rng.randrange(20, 60) for _ in range(rng.randrange(1, 20))
            ]
            params = SamplingParams(max_tokens=rng.randrange(1, 20), ignore_eos=True)
            request = Request(
                f"q{next_id}", prompt, params, arrival_time=step, priority=rng.randrange(3)
            )
            sched.add_request(request)
            next_id += 1
        if sched.requests and rng.random() < 0.05:
            sched.abort_request(rng.choice(list(sched.requests)))
        run_step(sched, token=rng.randrange(20, 60))
        check_invariants(sched)
    assert sched.num_preemptions > 0
    assert sched.kv.stats().prefix_hits > 0
    while sched.has_unfinished():
        run_step(sched)
    assert sched.kv.usage == 0.0


def _state(sched: Scheduler) -> tuple[object, ...]:
    """Everything a decode run may change: requests, block tables, the free queue, the cache."""
    kv, pool = sched.kv, sched.kv.pool
    requests = [(r.request_id, r.num_computed_tokens, list(r.all_token_ids),
                 list(r.output_token_ids), r.status) for r in sched.running]  # fmt: skip
    tables = {r.request_id: list(kv.block_ids(r.request_id)) for r in sched.running}
    cached = dict(pool.cached)
    return requests, tables, pool.free_block_ids(), cached, dict(kv.slots), pool.evictions


def _decoding(seed: int, policy: Policy = "fcfs") -> tuple[Scheduler, SchedulerOutput]:
    """Requests of mixed lengths, some sharing a prompt, past their prefills, with a cache
    left by finished ones: a plan where everyone decodes."""
    rng = random.Random(seed)
    sched = make_scheduler(num_blocks=96, seqs=6, budget=64, max_len=200, policy=policy)
    shared = [rng.randrange(10, 1000) for _ in range(9)]
    for i in range(6):
        prompt = (
            shared if i % 3 == 0 else [rng.randrange(10, 1000) for _ in range(rng.randrange(1, 11))]
        )
        params = SamplingParams(max_tokens=rng.randrange(40, 90), ignore_eos=True)
        sched.add_request(Request(f"old{i}", prompt, params, priority=rng.randrange(3)))
    for _ in range(rng.randrange(2, 6)):
        run_step(sched)
    for i in range(6):
        n = 9 if i % 2 == 0 else rng.randrange(1, 11)
        prompt = shared[:n] if i % 2 == 0 else [rng.randrange(10, 1000) for _ in range(n)]
        params = SamplingParams(max_tokens=rng.randrange(20, 60), ignore_eos=True)
        sched.add_request(Request(f"r{i}", prompt, params, priority=rng.randrange(3)))
    for _ in range(200):
        out, _ = run_step(sched)
        decoding = all(
            n == 1 and r.first_token_time for r, n in zip(out.requests, out.num_tokens, strict=True)
        )
        left = min((r.params.max_tokens - r.num_output_tokens for r in out.requests), default=0)
        if out.requests and decoding and not sched.waiting and left > 3:
            return sched, sched.schedule()
    raise AssertionError("never reached a decode-only step")


@pytest.mark.parametrize("seed", range(16))
def test_a_decode_run_is_its_single_steps_at_once(seed: int) -> None:
    policy: Policy = "priority" if seed % 3 == 0 else "fcfs"
    one, plan_one = _decoding(seed, policy)
    many, plan_many = _decoding(seed, policy)
    assert _state(one) == _state(many)
    longest = min(min(r.params.max_tokens - r.num_output_tokens for r in plan_one.requests) - 1, 30)
    steps = random.Random(seed).randrange(1, longest + 1)
    sampled = {r.request_id: 7 for r in plan_one.requests}
    preempted = one.num_preemptions
    try:
        plan_many = many.run_decodes(plan_many, sampled, steps)
    except ValueError as refused:  # only when single steps would run out of blocks
        assert "free KV blocks" in str(refused)
        for _ in range(steps):
            one.update_from_output(plan_one, sampled)
            plan_one = one.schedule()
        assert one.num_preemptions > preempted
        return
    for _ in range(steps):
        assert one.update_from_output(plan_one, sampled) == []
        plan_one = one.schedule()
    assert one.num_preemptions == preempted
    assert _state(one) == _state(many)
    assert [r.request_id for r in plan_many.requests] == [r.request_id for r in plan_one.requests]
    assert plan_many.num_tokens == plan_one.num_tokens and not plan_many.preempted


def test_a_decode_run_refuses_what_single_steps_would_do_differently() -> None:
    sched, plan = _decoding(3)
    sampled = {r.request_id: 7 for r in plan.requests}
    before = _state(sched)
    shortest = min(r.params.max_tokens - r.num_output_tokens for r in plan.requests)
    with pytest.raises(ValueError, match="stops within"):
        sched.run_decodes(plan, sampled, shortest)
    with pytest.raises(ValueError, match="is not decoding"):
        sched.run_decodes(plan, {}, 1)
    with pytest.raises(ValueError, match="every running request"):
        sched.run_decodes(SchedulerOutput(plan.requests[:1], [1]), sampled, 1)
    sched.add_request(req("late", n=5))
    if len(sched.running) < sched.config.max_num_seqs:
        with pytest.raises(ValueError, match="may be admitted"):
            sched.run_decodes(plan, sampled, 1)
    assert _state(sched) == before


def test_a_decode_run_refuses_to_outgrow_the_free_blocks_where_steps_would_preempt() -> None:
    sched = make_scheduler(num_blocks=8, budget=64, max_len=64)
    for rid in ("a", "b"):
        sched.add_request(req(rid, n=4, max_tokens=40, ignore_eos=True))
    plan, _ = run_step(sched)  # both prompts: one block each, first tokens
    plan = sched.schedule()
    sampled = {r.request_id: 7 for r in plan.requests}
    # 8 blocks of 4: each request holds 2 (8 slots for 5 tokens); 4 are free, 2 each: 16 slots
    with pytest.raises(ValueError, match="needs 6 free KV blocks"):
        sched.run_decodes(plan, sampled, 12)
    plan = sched.run_decodes(plan, sampled, 11)
    assert sched.kv.pool.num_free == 0 and sched.num_preemptions == 0
    sched.update_from_output(plan, sampled)
    assert sched.schedule().preempted  # the next single step has to preempt
