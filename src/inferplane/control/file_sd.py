"""Prometheus file-based service discovery (file_sd): every replica's /metrics endpoint in one
JSON file that Prometheus watches, whatever runs the replicas (local processes or Ray nodes).

The lifecycle calls `write` whenever it publishes a pool (a replica became ready, left the
balancer, exited); the file is rewritten only when its targets changed, atomically (a
temporary file renamed over it), so Prometheus never reads half a file. Each target carries
its pool, model and replica id, and its node on a cluster. `clear` empties it when the fleet
stops, so Prometheus does not keep scraping replicas that are gone.
"""

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from inferplane.control.replicas import PoolRuntime


def targets(pools: Iterable[PoolRuntime]) -> list[dict[str, Any]]:
    """One file_sd target group per replica that has an address (placed and started)."""
    groups: list[dict[str, Any]] = []
    for pool in pools:
        for managed in pool.replicas.values():
            handle = managed.handle
            if not handle.url:
                continue
            labels = {"pool": pool.name, "model": pool.spec.model, "replica": handle.id}
            if handle.node:
                labels["node"] = handle.node
            groups.append({"targets": [urlsplit(handle.url).netloc], "labels": labels})
    return groups


@dataclass
class FileSD:
    """The file at `path`, kept equal to the targets of `pools`."""

    path: Path
    pools: Mapping[str, PoolRuntime]
    _written: bytes | None = field(default=None, repr=False)

    def write(self, _pool: PoolRuntime | None = None) -> None:
        """Rewrite the file if the targets changed (the pool that changed is not needed)."""
        self._replace(orjson.dumps(targets(self.pools.values()), option=orjson.OPT_INDENT_2))

    def clear(self) -> None:
        self._replace(b"[]")

    def _replace(self, body: bytes) -> None:
        if body == self._written:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.tmp")
        partial.write_bytes(body)
        os.replace(partial, self.path)
        self._written = body
