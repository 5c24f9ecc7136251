"""The controller's settings: loop interval, readiness and drain timeouts, holding requests at
zero, restart backoff. One frozen dataclass, read by the controller, the replica lifecycle and
the simulator (which takes its holding and interval defaults from here)."""

from dataclasses import dataclass, field

from inferplane.control.actuators.base import BackoffConfig


@dataclass(frozen=True)
class ControllerConfig:
    interval_s: float = 1.0
    ready_timeout_s: float = 300.0  # a replica not ready by then is killed and restarted
    probe_timeout_s: float = 1.0
    hold_timeout_s: float = 60.0  # how long a request waits for a replica to come up
    max_held: int = 256  # requests held per pool before 503
    drain_grace_s: float = 30.0
    kv_cache_memory: str = "256MiB"
    admin_key: str = ""
    rollout_dir: str | None = None  # where rollout state is kept; None: in memory only
    backoff: BackoffConfig = field(default_factory=BackoffConfig)

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.hold_timeout_s <= 0 or self.ready_timeout_s <= 0:
            raise ValueError("controller interval and timeouts must be > 0 seconds, e.g. 1.0")
        if self.max_held < 0:
            raise ValueError(f"max_held must be >= 0, got {self.max_held}")
