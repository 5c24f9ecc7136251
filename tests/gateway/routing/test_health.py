import pytest

from inferplane.gateway.routing.health import HealthChecker, HealthConfig, OutlierDetector
from inferplane.gateway.routing.registry import Replica, ReplicaRegistry
from inferplane.gateway.transport.upstream import Upstream, UpstreamConfig
from tests.gateway.upstreams import Behaviour, fake_replica

pytestmark = pytest.mark.timeout(20)


def test_ejection_backs_off_and_readmission_waits_for_a_good_check() -> None:
    now = [0.0]
    ejected: list[str] = []
    config = HealthConfig(eject_after=2, base_ejection_s=1.0)
    detector = OutlierDetector(config, lambda: now[0], lambda r: ejected.append(r.id))
    replica = Replica("p/a", "p", "m", "http://a")
    detector.failure(replica)
    detector.success(replica)
    detector.failure(replica)
    assert _state(replica) == "ready"  # not consecutive
    detector.failure(replica)
    assert (_state(replica), ejected) == ("failed", ["p/a"])
    detector.checked(replica, 200)
    assert _state(replica) == "failed"  # still inside its ejection time
    now[0] = 1.0
    detector.checked(replica, 200)
    assert _state(replica) == "ready"
    detector.failure(replica)
    detector.failure(replica)
    assert replica.ejected_until == 1.0 + 2.0  # second ejection lasts twice as long
    detector.checked(replica, 503)
    assert _state(replica) == "draining"
    detector.checked(replica, None)
    assert _state(replica) == "draining"  # one failed check is not enough
    detector.checked(replica, 500)
    assert _state(replica) == "failed"


async def test_checker_probes_and_scrapes() -> None:
    behaviour = Behaviour()
    registry = ReplicaRegistry({"p": "m"})
    upstream = Upstream(UpstreamConfig())
    await upstream.start()
    detector = OutlierDetector(HealthConfig(), lambda: 0.0)
    try:
        async with fake_replica(behaviour) as url:
            registry.set_replicas("p", [url, "http://127.0.0.1:9"])
            live, dead = registry.replicas("p")
            checker = HealthChecker(registry, detector, upstream)
            await checker.check_all()
            await checker.check_all()
            assert (live.state, live.waiting, dead.state) == ("ready", 2, "failed")
            behaviour.ready = 503
            await checker.check_all()
            assert live.state == "draining"
    finally:
        await upstream.close()


def _state(replica: Replica) -> str:
    return replica.state  # a call: mypy must not narrow the field across detector calls
