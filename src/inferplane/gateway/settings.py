"""The gateway's settings in one place: defaults live here and the CLI mirrors them."""

from dataclasses import dataclass, field

from inferplane.gateway.proxy import ProxyConfig
from inferplane.gateway.routing.health import HealthConfig
from inferplane.gateway.transport.retry import RetryConfig
from inferplane.gateway.transport.upstream import UpstreamConfig
from inferplane.http.backpressure import StreamLimits


@dataclass(frozen=True)
class GatewaySettings:
    max_body_bytes: int = 4 * 1024 * 1024
    access_log: bool = False  # one line per request with its route; off on the fast path
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    streams: StreamLimits = field(default_factory=StreamLimits)  # send buffer, stall cut-off

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be >= 1024, got {self.max_body_bytes}")
