"""The gateway's process setup: with several workers each admits its share of the pool."""

from pathlib import Path

from inferplane.gateway.serve import GatewayOptions, build_state

FLEET = """pools:
  main: {model: chat, endpoints: ["http://127.0.0.1:9"]}
overload: {slots: 64, queue_size: 1000, max_wait: 5s}
"""


def test_each_worker_admits_its_share_of_the_slots_and_queue(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET)
    shares = {}
    for workers in (1, 2, 3):
        state = build_state(GatewayOptions(str(fleet), workers=workers, ledger=False))
        assert state.proxy.gate is not None
        overload = state.proxy.gate.config  # what the gate admits by
        shares[workers] = (overload.slots, overload.queue_size, overload.max_wait)
    assert shares == {1: (64, 1000, 5.0), 2: (32, 500, 5.0), 3: (21, 333, 5.0)}
