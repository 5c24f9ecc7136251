"""Default values from the fleet and the schema Helm checks them against."""

from pathlib import Path

import jsonschema
import pytest

from inferplane.config.loader import load_fleet
from inferplane.deploy.values import Pool, default_values, values_schema

FULL = Path(__file__).parents[2] / "examples" / "full.yaml"


def test_defaults_and_schema() -> None:
    fleet = load_fleet(FULL)
    values = default_values(fleet)
    assert len(values.admin.key) >= 32 and values.admin.key != default_values(fleet).admin.key
    assert set(values.pools) == {"chat-primary", "chat-canary", "embeddings",
                                 "chat-primary.rollout", "chat-canary.rollout",
                                 "embeddings.rollout"}  # fmt: skip
    schema = values_schema(fleet)
    assert "$defs" not in schema and "$ref" not in str(schema)
    jsonschema.Draft7Validator(schema).validate(values.model_dump(mode="json"))


def test_drain_must_end_inside_the_grace_period() -> None:
    with pytest.raises(ValueError, match="drainTimeoutSeconds"):
        Pool(terminationGracePeriodSeconds=60, drainTimeoutSeconds=60)
