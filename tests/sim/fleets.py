"""Small fleet files for the simulator tests (a planner preset as the model: no torch)."""

from inferplane.config.loader import parse_fleet
from inferplane.config.schema import FleetConfig


def fleet(
    replicas: str = "{min: 1, max: 4}",
    autoscale: str = "{}",
    policy: str = "",
    tier: str = "{}",
    capacity: str = "on-demand",
) -> FleetConfig:
    balancing = f"balancing: {{policy: {policy}}}\n" if policy else ""
    return parse_fleet(
        "models:\n"
        "  chat: {source: llama-3-8b, max_model_len: 8192}\n"
        "pools:\n"
        "  chat:\n"
        "    model: chat\n"
        f"    replicas: {replicas}\n"
        "    resources: {gpu: H100}\n"
        f"    autoscale: {autoscale}\n"
        f"    tier: {tier}\n"
        f"    capacity: {capacity}\n"
        "pricing: {provider: runpod}\n" + balancing
    )
