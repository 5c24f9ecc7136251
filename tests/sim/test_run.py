import json
import time
from pathlib import Path

import pytest

from inferplane.config.loader import parse_fleet
from inferplane.ledger.pricing import default_catalog
from inferplane.sim.load import load_trace
from inferplane.sim.run import SimOptions, simulate
from inferplane.sim.trace import load_azure_trace
from tests.sim.fleets import fleet

SLICE = Path(__file__).parent / "data" / "azure_conv_1000.csv"


def test_a_thousand_conv_requests_simulate_in_seconds() -> None:
    trace = load_azure_trace(SLICE)
    started = time.perf_counter()
    report = simulate(fleet(), "chat", trace, "H100", "least_outstanding")
    elapsed = time.perf_counter() - started
    assert elapsed < 10.0, f"took {elapsed:.1f} s"
    assert report.finished == 1000 and report.rejected == 0
    assert report.output_tokens == sum(r.output_tokens for r in trace.requests)
    assert 0 < report.ttft_s.p50 <= report.ttft_s.p95 <= report.ttft_s.p99 < report.latency_s.p99
    assert report.gpu == "H100-SXM" and report.model == "llama-3-8b"


def test_the_same_seed_gives_the_same_report_and_it_is_json() -> None:
    trace = load_azure_trace(SLICE, speedup=3.0, limit=300)
    options = SimOptions(seed=7)
    first = simulate(fleet(), "chat", trace, "H100", "power_of_two", options=options)
    second = simulate(fleet(), "chat", trace, "H100", "power_of_two", options=options)
    assert first.to_dict() == second.to_dict()
    assert json.loads(json.dumps(first.to_dict())) == first.to_dict()
    other = simulate(fleet(), "chat", trace, "H100", "round_robin", options=options)
    assert other.to_dict() != first.to_dict() and other.policy == "round_robin"


def test_cost_is_gpu_hours_at_the_catalog_price() -> None:
    trace = load_azure_trace(SLICE, limit=100)
    report = simulate(fleet(), "chat", trace, "H100", options=SimOptions(replicas=2))
    price = default_catalog().hourly_usd("H100-SXM", "runpod", "on-demand")
    assert report.hourly_usd == price
    assert report.gpu_seconds == pytest.approx(2 * report.duration_s)
    assert report.cost_usd == pytest.approx(report.gpu_seconds / 3600 * (price or 0), abs=1e-5)
    per_million = (report.cost_usd or 0) / report.output_tokens * 1e6
    assert report.usd_per_1m_output_tokens == pytest.approx(per_million, rel=1e-4)


def test_the_fleets_policy_is_the_default() -> None:
    trace = load_azure_trace(SLICE, limit=20)
    assert simulate(fleet(policy="round_robin"), "chat", trace, "H100").policy == "round_robin"


def test_prompts_longer_than_the_context_are_refused_with_400() -> None:
    trace = load_azure_trace(SLICE, limit=200)
    too_long = sum(1 for r in trace.requests if r.prompt_tokens > 1024)
    assert too_long > 0
    bounded = SimOptions(kv_blocks=64)  # 1,024 tokens of cache cap the context
    report = simulate(fleet(), "chat", trace, "H100", options=bounded)
    assert report.rejected_by_reason == {"400 context_length_exceeded": too_long}
    assert report.finished == 200 - too_long


def test_bad_names_are_errors_with_advice() -> None:
    trace = load_azure_trace(SLICE, limit=5)
    with pytest.raises(ValueError, match="unknown pool"):
        simulate(fleet(), "nope", trace, "H100")
    with pytest.raises(ValueError, match="unknown balancing policy"):
        simulate(fleet(), "chat", trace, "H100", "fastest")
    with pytest.raises(ValueError, match="unknown GPU"):
        simulate(fleet(), "chat", trace, "H900")
    with pytest.raises(ValueError, match="unknown model shape"):
        simulate(fleet(), "chat", trace, "H100", options=SimOptions(shape="gpt-9"))


def test_shared_prefixes_reach_the_engines_prefix_cache() -> None:
    trace = load_trace(Path(__file__).parent / "data" / "mooncake_300.jsonl", 2.0, 150)
    config = parse_fleet("""
models: {chat: {source: llama-3.1-8b, max_model_len: 131072}}
pools: {chat: {model: chat, replicas: {min: 4, max: 4}, resources: {gpu: H100}}}
""")
    spread = simulate(config, "chat", trace, "H100", "round_robin")
    affine = simulate(config, "chat", trace, "H100", "prefix_affinity")
    assert affine.prefix_cache_hit_rate > 2 * spread.prefix_cache_hit_rate > 0
    assert affine.ttft_s.p50 < spread.ttft_s.p50
    assert spread.busiest_replica_share == pytest.approx(0.25, abs=0.01)  # round robin: even
    assert affine.busiest_replica_share < 0.4
