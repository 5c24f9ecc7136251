"""The backend's name to its actuator: local by default, Ray refused before it connects when a
pool asks for what Ray cannot reserve, an unknown name named."""

from pathlib import Path

import pytest

from inferplane.config.schema import FleetConfig
from inferplane.control.actuators.factory import BACKENDS, ActuatorSetup, build_actuator
from inferplane.control.actuators.local import LocalActuator


def fleet(resources: dict[str, object] | None = None) -> FleetConfig:
    pool: dict[str, object] = {"model": "chat", "resources": resources or {}}
    return FleetConfig.model_validate(
        {"models": {"chat": {"source": "demo:tiny"}}, "pools": {"chat": pool}}
    )


def test_local_is_the_default_and_unknown_backends_are_named(tmp_path: Path) -> None:
    assert fleet().backend == "local"
    setup = ActuatorSetup(fleet(), tmp_path, grace_s=7.0, env={"K": "v"})
    local = build_actuator("local", setup)
    assert isinstance(local, LocalActuator) and local.grace_s == 7.0 and local.env == {"K": "v"}
    with pytest.raises(ValueError, match="use one of local, ray"):
        build_actuator("nomad", setup)
    assert set(BACKENDS) >= {"local", "ray"}


def test_ray_refuses_a_mig_pool_before_connecting(tmp_path: Path) -> None:
    setup = ActuatorSetup(fleet({"mig": "3g.40gb"}), tmp_path)
    with pytest.raises(ValueError, match=r"pools\.chat\.resources: a MIG slice"):
        build_actuator("ray", setup)
    import ray  # noqa: PLC0415

    assert not ray.is_initialized()
