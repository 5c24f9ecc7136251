"""Connections to replicas: a lean keep-alive pool per replica for the proxy path
(client.py), and one aiohttp session for health checks and scrapes.

The idle keep-alive time is kept below common servers' (uvicorn closes after 5 s) so a
request rarely meets a connection the server is closing.
"""

import contextlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from inferplane.gateway.transport.client import Pool

SKIP_HEADERS = frozenset({"Accept-Encoding", "User-Agent", "Accept"})


@dataclass(frozen=True)
class UpstreamConfig:
    connect_timeout_s: float = 5.0
    keepalive_s: float = 4.0
    read_bufsize: int = 2**16

    def __post_init__(self) -> None:
        if self.connect_timeout_s <= 0 or self.keepalive_s <= 0:
            raise ValueError("connect timeout and keep-alive must be > 0 seconds")


class Upstream:
    """The client side of the proxy; `start` inside the event loop, `close` at shutdown."""

    def __init__(self, config: UpstreamConfig, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._pools: dict[str, Pool] = {}
        self._tls: ssl.SSLContext | None = None

    def pool(self, url: str) -> Pool:
        """The connection pool of the replica at `url` (made on first use)."""
        pool = self._pools.get(url)
        if pool is None:
            if url.startswith("https://") and self._tls is None:
                self._tls = ssl.create_default_context()
            pool = Pool(url, self.config.keepalive_s, self.clock, self._tls)
            self._pools[url] = pool
        return pool

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=0,
            keepalive_timeout=self.config.keepalive_s,
            enable_cleanup_closed=False,
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self.config.connect_timeout_s,
            sock_connect=self.config.connect_timeout_s,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            auto_decompress=False,
            skip_auto_headers=SKIP_HEADERS,
            read_bufsize=self.config.read_bufsize,
        )

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Upstream.start() must run inside the event loop first")
        return self._session

    async def probe(self, url: str, timeout_s: float) -> int | None:
        """Status of GET /ready (or /health where /ready is missing); None if unreachable."""
        status = await self._status(f"{url}/ready", timeout_s)
        if status == 404:
            status = await self._status(f"{url}/health", timeout_s)
        return status

    async def _status(self, url: str, timeout_s: float) -> int | None:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            timeout = aiohttp.ClientTimeout(total=timeout_s)
            async with self.session.get(url, timeout=timeout) as response:
                await response.read()
                return response.status
        return None

    async def get_text(self, url: str, timeout_s: float) -> str | None:
        """The body of a 200 GET, else None."""
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self.session.get(url, timeout=timeout) as response:
            if response.status != 200:
                return None
            return await response.text()
