from prometheus_client import CollectorRegistry, generate_latest

from inferplane.config.loader import parse_fleet
from inferplane.telemetry.sla import PoolSlaCollector, pool_slas

FLEET = """
models:
  m: {source: demo:tiny}
pools:
  fast: {model: m}
  bulk: {model: m}
routes:
  - {name: tight, match: {max_latency_ms_below: 200}, pool: fast}
  - {name: loose, match: {max_latency_ms_below: 500}, pool: fast}
  - {name: default, pool: bulk}
"""


def test_a_pools_sla_is_its_tightest_route() -> None:
    assert pool_slas(parse_fleet(FLEET)) == {"fast": 0.2}


def test_the_sla_is_published_for_the_alert_rule() -> None:
    registry = CollectorRegistry()
    registry.register(PoolSlaCollector(pool_slas(parse_fleet(FLEET))))
    text = generate_latest(registry).decode()
    assert 'inference_pool_sla_seconds{pool="fast"} 0.2' in text
    assert 'pool="bulk"' not in text
