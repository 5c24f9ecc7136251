"""The embedder drift scoring uses: the fleet's own embedding model, asked over HTTP on a
routable replica of a pool that serves it (none: drift goes on with lengths and scripts)."""

from collections.abc import Sequence

import httpx

from inferplane.config.schema import FleetConfig
from inferplane.gateway.routing.registry import ReplicaRegistry

TIMEOUT_S = 10.0


class ReplicaEmbedder:
    """Embeds text batches on a replica of the fleet's first embedding pool."""

    def __init__(self, registry: ReplicaRegistry, pool: str, model: str) -> None:
        self.registry, self.pool, self.model = registry, pool, model

    async def __call__(self, texts: Sequence[str]) -> list[list[float]] | None:
        replicas = [r for r in self.registry.replicas(self.pool) if r.routable]
        if not replicas:
            return None
        body = {"model": self.model, "input": list(texts)}
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            answer = await client.post(f"{replicas[0].url}/v1/embeddings", json=body)
            answer.raise_for_status()
        rows = sorted(answer.json()["data"], key=lambda row: row["index"])
        return [row["embedding"] for row in rows]


def fleet_embedder(fleet: FleetConfig, registry: ReplicaRegistry) -> ReplicaEmbedder | None:
    for name, pool in fleet.pools.items():
        spec = fleet.models.get(pool.model)
        if spec is not None and spec.task == "embed":
            return ReplicaEmbedder(registry, name, pool.model)
    return None
