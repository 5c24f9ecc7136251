"""Every metric name the platform publishes, with its help text, labels and buckets.

Engines publish vLLM-compatible names (`vllm:*`) so vLLM dashboards work unchanged; the
platform publishes the `inference_*` family; GPUs are published under dcgm-exporter's
`DCGM_FI_*` names so DCGM dashboards work. Dashboards, alert rules and exporters all take
their names from here, and the tests hold them to it, so a rename cannot silently break a
panel. `labels` is the largest label set a series may carry: a process may use a subset, and
no label is ever a user id, a key secret or anything else unbounded.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from inferplane.telemetry.buckets import E2E_BUCKETS, RATE_BUCKETS, TPOT_BUCKETS, TTFT_BUCKETS

Kind = Literal["counter", "gauge", "histogram"]
_SUFFIXES: Mapping[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}
DCGM_LABELS = ("gpu", "UUID", "modelName", "Hostname")


@dataclass(frozen=True)
class MetricSpec:
    """One metric family. Counters are named without `_total`, as prometheus_client wants."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] | None = None

    def series(self) -> tuple[str, ...]:
        """The sample names this family shows in the exposition format."""
        return tuple(self.name + suffix for suffix in _SUFFIXES[self.kind])


def _engine(
    name: str, kind: Kind, text: str, buckets: tuple[float, ...] | None = None
) -> MetricSpec:
    return MetricSpec(name, kind, text, ("model_name",), buckets)


# Engine (vLLM-compatible), one replica.
VLLM_NUM_REQUESTS_RUNNING = _engine(
    "vllm:num_requests_running", "gauge", "Requests in the running batch."
)
VLLM_NUM_REQUESTS_WAITING = _engine(
    "vllm:num_requests_waiting", "gauge", "Requests waiting to be scheduled."
)
VLLM_GPU_CACHE_USAGE = _engine(
    "vllm:gpu_cache_usage_perc", "gauge", "KV cache usage, 1 means 100 percent."
)
VLLM_KV_CACHE_USAGE = _engine(
    "vllm:kv_cache_usage_perc", "gauge", "KV cache usage, 1 means 100 percent."
)
VLLM_PREFIX_CACHE_QUERIES = _engine(
    "vllm:prefix_cache_queries", "counter", "Prompt tokens looked up in the prefix cache."
)
VLLM_PREFIX_CACHE_HITS = _engine(
    "vllm:prefix_cache_hits", "counter", "Prompt tokens found in the prefix cache."
)
VLLM_NUM_PREEMPTIONS = _engine("vllm:num_preemptions", "counter", "Requests preempted.")
VLLM_PROMPT_TOKENS = _engine("vllm:prompt_tokens", "counter", "Prompt tokens processed.")
VLLM_GENERATION_TOKENS = _engine("vllm:generation_tokens", "counter", "Tokens generated.")
VLLM_KV_CACHE_EVICTIONS = _engine("vllm:kv_cache_evictions", "counter", "Cached KV blocks evicted.")
VLLM_TTFT = _engine(
    "vllm:time_to_first_token_seconds", "histogram", "Time to first token.", TTFT_BUCKETS
)
VLLM_TPOT = _engine(
    "vllm:time_per_output_token_seconds",
    "histogram",
    "Time per output token after the first.",
    TPOT_BUCKETS,
)
VLLM_E2E = _engine(
    "vllm:e2e_request_latency_seconds", "histogram", "End-to-end request latency.", E2E_BUCKETS
)

# Platform (inference_*): replicas and the gateway alike; `pool` only where it is known.
REQUEST_DURATION = MetricSpec(
    "inference_request_duration_seconds",
    "histogram",
    "Request duration.",
    ("model", "pool"),
    E2E_BUCKETS,
)
TIME_TO_FIRST_TOKEN = MetricSpec(
    "inference_time_to_first_token_seconds",
    "histogram",
    "Time to first token.",
    ("model", "pool"),
    TTFT_BUCKETS,
)
TOKENS_PER_SECOND = MetricSpec(
    "inference_tokens_per_second",
    "histogram",
    "Output tokens per second of each request.",
    ("model", "pool"),
    RATE_BUCKETS,
)
REQUESTS = MetricSpec(
    "inference_request",
    "counter",
    "Requests by model and HTTP status.",
    ("model", "pool", "status"),
)
QUEUE_DEPTH = MetricSpec(
    "inference_queue_depth", "gauge", "Requests waiting in the engine.", ("model",)
)
CACHE_HIT_RATE = MetricSpec(
    "inference_cache_hit_rate", "gauge", "Prefix cache hits over queries (tokens).", ("model",)
)
MODEL_SLEEPING = MetricSpec(
    "inference_model_sleeping", "gauge", "1 while the model sleeps (warm tier).", ("model",)
)
# One family for every load and tier move: the model server observes its own load as
# {from="cold",to="hot"}; the control plane times each transition hot / warm / cold.
MODEL_LOAD_SECONDS = MetricSpec(
    "inference_model_load_seconds",
    "histogram",
    "Seconds a model took to move between tiers (a load is cold -> hot).",
    ("model", "from", "to"),
    (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0),
)
COST_DOLLARS = MetricSpec(
    "inference_cost_dollars",
    "counter",
    "Dollars of GPU time spent, by model and team (idle replica time: team=_idle).",
    ("model", "team"),
)
BUDGET_EVENTS = MetricSpec(
    "inference_budget_events",
    "counter",
    "Budget warnings (level=soft) and refusals (level=hard).",
    ("scope", "period", "level"),
)
POOL_SLA_SECONDS = MetricSpec(
    "inference_pool_sla_seconds",
    "gauge",
    "The tightest latency SLA a route promises for the pool.",
    ("pool",),
)

# Gateway.
ROUTE_DECISIONS = MetricSpec(
    "inference_route_decisions", "counter", "Routing decisions by rule.", ("rule",)
)
GATEWAY_RETRIES = MetricSpec(
    "inference_gateway_retries", "counter", "Attempts retried on another replica.", ("pool",)
)
GATEWAY_EJECTIONS = MetricSpec(
    "inference_gateway_ejections", "counter", "Replicas ejected as outliers.", ("pool",)
)
GATEWAY_REPLICAS_READY = MetricSpec(
    "inference_gateway_replicas_ready", "gauge", "Routable replicas per pool.", ("pool",)
)

# Model quality, per model and version (telemetry/quality.py, gateway/books/feedback.py).
# Minus the mean logprob (>= 0): Prometheus drops a histogram's _sum below a negative bucket.
MEAN_LOGPROB = MetricSpec(
    "inference_completion_negative_mean_logprob",
    "histogram",
    "Minus the mean log-probability of a completion's sampled tokens (0: fully confident).",
    ("model", "model_version"),
    (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0),
)
LOW_CONFIDENCE_SHARE = MetricSpec(
    "inference_completion_low_confidence_share",
    "histogram",
    "Share of a completion's tokens sampled with probability below the low-confidence bar.",
    ("model", "model_version"),
    (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0),
)
DRIFT_SCORE = MetricSpec(
    "inference_input_drift_score",
    "gauge",
    "Drift of the live prompt window from the reference (PSI for lengths and scripts, "
    "energy distance for embeddings).",
    ("model", "model_version", "signal"),
)
FEEDBACK_EVENTS = MetricSpec(
    "inference_feedback_events",
    "counter",
    "Feedback events: ratings, thumbs, regenerations and abandoned streams.",
    ("model", "model_version", "kind", "negative"),
)

# GPUs: dcgm-exporter's names, units and labels (MiB, W, MHz, C, percent).
DCGM_GPU_UTIL = MetricSpec("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", DCGM_LABELS)
DCGM_FB_USED = MetricSpec(
    "DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", DCGM_LABELS
)
DCGM_FB_FREE = MetricSpec(
    "DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", DCGM_LABELS
)
DCGM_GPU_TEMP = MetricSpec("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", DCGM_LABELS)
DCGM_POWER_USAGE = MetricSpec("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", DCGM_LABELS)
DCGM_SM_CLOCK = MetricSpec(
    "DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", DCGM_LABELS
)
DCGM_THROTTLE_REASONS = MetricSpec(
    "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
    "gauge",
    "Current clock throttle reasons (bitmask).",
    DCGM_LABELS,
)
GPU_UTILIZATION = MetricSpec(
    "inference_gpu_utilization_percent", "gauge", "GPU utilization in percent.", DCGM_LABELS
)
GPU_MEMORY_USED = MetricSpec(
    "inference_gpu_memory_used_bytes", "gauge", "GPU memory used in bytes.", DCGM_LABELS
)
GPU_MEMORY_TOTAL = MetricSpec(
    "inference_gpu_memory_total_bytes", "gauge", "GPU memory in bytes.", DCGM_LABELS
)
GPU_PROCESS_MEMORY = MetricSpec(
    "inference_gpu_process_memory_used_bytes",
    "gauge",
    "GPU memory used by one process, in bytes.",
    ("gpu", "UUID", "pid"),
)

SPECS: tuple[MetricSpec, ...] = tuple(
    v for v in dict(globals()).values() if isinstance(v, MetricSpec)
)
BY_NAME: Mapping[str, MetricSpec] = MappingProxyType({s.name: s for s in SPECS})


def known_series() -> frozenset[str]:
    """Every sample name a scrape of an inferplane process may show."""
    return frozenset(name for spec in SPECS for name in spec.series())


def family_of(sample: str) -> MetricSpec | None:
    """The family a sample name belongs to (`inference_request_total` -> REQUESTS)."""
    for spec in SPECS:
        if sample in spec.series():
            return spec
    return None


def _labels(spec: MetricSpec, labels: Sequence[str] | None) -> tuple[str, ...]:
    chosen = spec.labels if labels is None else tuple(labels)
    extra = sorted(set(chosen) - set(spec.labels))
    if extra:
        raise ValueError(f"{spec.name} takes labels from {spec.labels}, not {extra}")
    return chosen


def counter(
    spec: MetricSpec, registry: CollectorRegistry, labels: Iterable[str] | None = None
) -> Counter:
    return Counter(
        spec.name,
        spec.help,
        _labels(spec, None if labels is None else tuple(labels)),
        registry=registry,
    )


def gauge(
    spec: MetricSpec, registry: CollectorRegistry, labels: Iterable[str] | None = None
) -> Gauge:
    return Gauge(
        spec.name,
        spec.help,
        _labels(spec, None if labels is None else tuple(labels)),
        registry=registry,
    )


def histogram(
    spec: MetricSpec, registry: CollectorRegistry, labels: Iterable[str] | None = None
) -> Histogram:
    buckets = spec.buckets or Histogram.DEFAULT_BUCKETS
    return Histogram(
        spec.name,
        spec.help,
        _labels(spec, None if labels is None else tuple(labels)),
        buckets=buckets,
        registry=registry,
    )
