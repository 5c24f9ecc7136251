"""Decode stretches (sim/stretch.py): one event for many steps, the same run as step by step."""

import dataclasses
from pathlib import Path

from inferplane.config.loader import parse_fleet
from inferplane.sim.latency import LinearStepTime
from inferplane.sim.load import load_trace
from inferplane.sim.run import SimOptions, simulate
from tests.sim.fleets import fleet
from tests.sim.test_replica import Harness

DATA = Path(__file__).parent / "data"
LONG_CONTEXT = parse_fleet("""
models: {chat: {source: llama-3.1-8b, max_model_len: 131072}}
pools: {chat: {model: chat, replicas: {min: 4, max: 4}, resources: {gpu: H100}}}
""")


def _both(options: SimOptions, *args: object) -> tuple[dict[str, object], dict[str, object]]:
    one_by_one = dataclasses.replace(options, decode_stretches=False)
    fast = simulate(*args, options=options).to_dict()  # type: ignore[arg-type]
    slow = simulate(*args, options=one_by_one).to_dict()  # type: ignore[arg-type]
    return fast, slow


def test_shared_prefixes_replay_the_same_with_and_without_stretches() -> None:
    trace = load_trace(DATA / "mooncake_300.jsonl", speedup=2.0, limit=150)
    fast, slow = _both(SimOptions(), LONG_CONTEXT, "chat", trace, "H100", "prefix_affinity")
    assert fast == slow
    assert 0 < float(fast["prefix_cache_hit_rate"]) < 1  # type: ignore[arg-type]


def test_preemptions_scaling_and_arrivals_mid_stretch_replay_the_same() -> None:
    trace = load_trace(DATA / "azure_conv_1000.csv", speedup=6.0, limit=400)
    tight = SimOptions(kv_blocks=600, max_num_seqs=16, cold_start_s=5.0)
    fast, slow = _both(tight, fleet("{min: 1, max: 3}"), "chat", trace, "H100", "round_robin")
    assert fast == slow
    assert int(fast["preemptions"]) > 0 and fast["scale_events"]  # type: ignore[call-overload]


def test_a_stretch_stops_where_the_cache_runs_out_and_the_scheduler_preempts() -> None:
    # 4 blocks of 16: two 24-token prompts fit, both grown to 40 tokens do not
    for stretches in (True, False):
        h = Harness(LinearStepTime(base_s=0.01), num_blocks=4, max_model_len=64)
        h.replica._stretches = stretches
        records = [h.arrive(0.0, i, prompt=24, out=16) for i in range(2)]
        h.loop.run()
        assert [r.output_tokens for r in records] == [16, 16]
        assert h.replica.scheduler.num_preemptions > 0
        if stretches:
            timeline = [(r.first_token_s, r.finish_s) for r in records]
        else:
            assert timeline == [(r.first_token_s, r.finish_s) for r in records]


def test_a_request_arriving_mid_stretch_joins_the_next_step() -> None:
    h = Harness(LinearStepTime(base_s=0.01))
    long = h.arrive(0.0, 0, prompt=10, out=100)
    late = h.arrive(0.5051, 1, prompt=10, out=1)  # 0.01 prefill, then decodes of 10 ms
    h.loop.run()
    assert late.first_token_s is not None and abs(late.first_token_s - 0.52) < 1e-9
    assert long.finish_s is not None and abs(long.finish_s - 1.0) < 1e-9
    assert h.replica.steps == 100  # the late request shared the step at 0.51
    assert late.outcome == "finished"
