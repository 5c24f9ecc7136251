"""Cross-pool routing by the fleet's rules (sim/routing.py, simulate_fleet)."""

from pathlib import Path

from inferplane.config.loader import parse_fleet
from inferplane.sim.load import load_trace
from inferplane.sim.records import RequestRecord
from inferplane.sim.routing import route_records
from inferplane.sim.run import SimOptions, simulate_fleet

DATA = Path(__file__).parent / "data"
FLEET = parse_fleet("""
models:
  chat: {source: llama-3-8b, max_model_len: 8192}
  chat-next: {source: llama-3-8b, max_model_len: 8192, version: "2"}
  embed: {source: llama-3-8b, max_model_len: 8192, task: embed}
pools:
  primary: {model: chat, replicas: {min: 2, max: 2}, resources: {gpu: H100}}
  canary: {model: chat-next, replicas: {min: 1, max: 1}, resources: {gpu: A100-80GB}}
  vectors: {model: embed, replicas: {min: 1, max: 1}, resources: {gpu: L4}}
  elsewhere: {model: big, endpoints: ["http://10.0.0.9:8000"]}
routes:
  - {name: canary, canary: {pool: canary, percent: 20}}
  - {name: default, pool: primary}
""")


def test_a_canary_rule_splits_the_trace_by_conversation_and_both_pools_run() -> None:
    trace = load_trace(DATA / "mooncake_300.jsonl", speedup=2.0, limit=120)
    report = simulate_fleet(FLEET, "chat", trace, options=SimOptions(shape="llama-3.1-8b"))
    assert set(report.pools) == {"primary", "canary"}  # the embedding pool gets nothing
    canary, primary = report.routes["canary:canary(20%)"], report.routes["default"]
    assert canary + primary == 120 and 0.08 < canary / 120 < 0.35
    assert report.pools["canary"].gpu == "A100-80GB" and report.pools["primary"].gpu == "H100-SXM"
    assert report.pools["canary"].requests == canary
    assert report.finished + report.rejected == 120
    assert report.gpu_seconds == sum(p.gpu_seconds for p in report.pools.values())


def test_requests_opening_with_the_same_block_land_in_the_same_pool() -> None:
    trace = load_trace(DATA / "mooncake_300.jsonl")
    records = [RequestRecord(i, r.arrival_s, r.prompt_tokens, r.output_tokens, r.hash_ids)
               for i, r in enumerate(trace.requests)]  # fmt: skip
    routes = route_records(FLEET, "chat", records, trace.block_tokens, 16)
    assert set(routes.pools) == {"primary", "canary"}
    pools_by_opening: dict[int, set[str]] = {}
    for record in records:
        pools_by_opening.setdefault(record.hash_ids[0], set()).add(record.pool)
    assert all(len(pools) == 1 for pools in pools_by_opening.values())
    assert len(pools_by_opening) < 200  # conversations come back: openings repeat


def test_requests_the_rules_refuse_are_refused_with_their_answer() -> None:
    trace = load_trace(DATA / "azure_conv_1000.csv", limit=30)
    unknown = simulate_fleet(FLEET, "gpt-9", trace)
    assert unknown.finished == 0 and unknown.pools == {}
    assert unknown.rejected_by_reason == {"404 model_not_found": 30}
    external = simulate_fleet(FLEET, "big", trace)
    assert external.rejected_by_reason == {"501 not_simulated": 30}


def test_pools_simulated_in_processes_of_their_own_serve_the_same() -> None:
    trace = load_trace(DATA / "mooncake_300.jsonl", speedup=2.0, limit=120)
    options = SimOptions(shape="llama-3.1-8b")
    together = simulate_fleet(FLEET, "chat", trace, options=options)
    apart = simulate_fleet(FLEET, "chat", trace, options=options, workers=2)
    assert apart.ttft_s == together.ttft_s and apart.latency_s == together.latency_s
    assert apart.routes == together.routes and apart.finished == together.finished
    for name, report in apart.pools.items():
        alone = together.pools[name]
        assert (report.ttft_s, report.finished, report.prefix_cache_hit_rate) == (
            alone.ttft_s, alone.finished, alone.prefix_cache_hit_rate)  # fmt: skip
