"""The fleet file: schema, loading and errors that say what to change."""

from inferplane.config.errors import ConfigError, ConfigIssue
from inferplane.config.loader import load_fleet, parse_fleet
from inferplane.config.schema import FleetConfig, ModelSpec, PoolSpec, RouteRule

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "FleetConfig",
    "ModelSpec",
    "PoolSpec",
    "RouteRule",
    "load_fleet",
    "parse_fleet",
]
