"""/admin/fleet with a GPU type the price catalog does not know (a cluster's own resource name,
as the Ray backend allows): the status is served, that pool's cost is zero."""

from pathlib import Path

from inferplane.config.schema import FleetConfig
from inferplane.control.actuators.local import LocalActuator
from inferplane.control.controller import Controller
from inferplane.control.fleet_status import FleetStatus
from inferplane.gateway.state import GatewayState


def test_an_unknown_gpu_type_costs_nothing_instead_of_failing(tmp_path: Path) -> None:
    fleet = FleetConfig.model_validate(
        {
            "models": {"chat": {"source": "demo:tiny"}},
            "pools": {"chat": {"model": "chat", "resources": {"gpu": "far", "count": 1}}},
            "routes": [{"name": "default", "pool": "chat"}],
        }
    )
    controller = Controller(fleet, GatewayState(fleet), LocalActuator(tmp_path))
    snapshot = FleetStatus(controller).snapshot()
    assert [(p["name"], p["cost_per_hour_usd"]) for p in snapshot["pools"]] == [("chat", 0.0)]
