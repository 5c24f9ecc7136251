"""/metrics: vLLM-compatible names (so vLLM dashboards work) and the platform's inference_*.

Engine-wide counts are read from `EngineClient.stats()` at scrape time by a collector; request
latencies are observed by the routes into histograms. Everything lives on a registry the app
owns, so two apps in one process never share series.
"""

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from inferplane.engine.protocol import EngineStats

TTFT_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
TPOT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5)
E2E_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0, 120.0, 300.0)
RATE_BUCKETS = (1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0)

StatsSource = Callable[[], EngineStats | None]


class EngineStatsCollector(Collector):
    """Turns an engine stats snapshot into gauges and counters at scrape time."""

    def __init__(self, model: str, source: StatsSource) -> None:
        self.model = model
        self.source = source

    def collect(self) -> Iterator[Metric]:
        stats = self.source()
        if stats is None:  # still loading: publish nothing rather than zeros that mislead
            return
        yield from self._gauges(stats)
        yield from self._counters(stats)

    def _gauge(self, name: str, doc: str, value: float, label: str) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=[label])
        family.add_metric([self.model], value)
        return family

    def _counter(self, name: str, doc: str, value: float) -> CounterMetricFamily:
        family = CounterMetricFamily(name, doc, labels=["model_name"])
        family.add_metric([self.model], value)
        return family

    def _gauges(self, s: EngineStats) -> Iterator[Metric]:
        hit_rate = s.prefix_cache_hits / s.prefix_cache_queries if s.prefix_cache_queries else 0.0
        yield self._gauge(
            "vllm:num_requests_running",
            "Requests in the running batch.",
            s.num_running,
            "model_name",
        )
        yield self._gauge(
            "vllm:num_requests_waiting",
            "Requests waiting to be scheduled.",
            s.num_waiting,
            "model_name",
        )
        yield self._gauge(
            "vllm:gpu_cache_usage_perc",
            "KV cache usage, 1 means 100 percent.",
            s.kv_usage,
            "model_name",
        )
        yield self._gauge(
            "vllm:kv_cache_usage_perc",
            "KV cache usage, 1 means 100 percent.",
            s.kv_usage,
            "model_name",
        )
        yield self._gauge(
            "inference_queue_depth", "Requests waiting in the engine.", s.num_waiting, "model"
        )
        yield self._gauge(
            "inference_cache_hit_rate",
            "Prefix cache hits over queries (tokens).",
            hit_rate,
            "model",
        )
        yield self._gauge(
            "inference_model_sleeping",
            "1 while the model sleeps (warm tier).",
            1.0 if s.sleeping else 0.0,
            "model",
        )

    def _counters(self, s: EngineStats) -> Iterator[Metric]:
        yield self._counter(
            "vllm:prefix_cache_queries",
            "Prompt tokens looked up in the prefix cache.",
            s.prefix_cache_queries,
        )
        yield self._counter(
            "vllm:prefix_cache_hits",
            "Prompt tokens found in the prefix cache.",
            s.prefix_cache_hits,
        )
        yield self._counter("vllm:num_preemptions", "Requests preempted.", s.num_preemptions)
        yield self._counter("vllm:prompt_tokens", "Prompt tokens processed.", s.prompt_tokens_total)
        yield self._counter(
            "vllm:generation_tokens", "Tokens generated.", s.generation_tokens_total
        )
        yield self._counter("vllm:kv_cache_evictions", "Cached KV blocks evicted.", s.kv_evictions)


class ServerMetrics:
    """The server's metric objects on one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._request_series()
        self._platform_series()

    def _request_series(self) -> None:
        r, label = self.registry, ["model_name"]
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Time to first token.",
            label,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "vllm:time_per_output_token_seconds",
            "Time per output token after the first.",
            label,
            buckets=TPOT_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "End-to-end request latency.",
            label,
            buckets=E2E_BUCKETS,
            registry=r,
        )

    def _platform_series(self) -> None:
        r, label = self.registry, ["model"]
        self.duration = Histogram(
            "inference_request_duration_seconds",
            "Request duration in the server.",
            label,
            buckets=E2E_BUCKETS,
            registry=r,
        )
        self.inf_ttft = Histogram(
            "inference_time_to_first_token_seconds",
            "Time to first token.",
            label,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tokens_per_second = Histogram(
            "inference_tokens_per_second",
            "Output tokens per second of each request.",
            label,
            buckets=RATE_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "inference_request",
            "API requests by model and HTTP status.",
            ["model", "status"],
            registry=r,
        )
        self.load_seconds = Gauge(
            "inference_model_load_seconds", "Seconds the model took to load.", label, registry=r
        )

    def watch_engine(self, model: str, source: StatsSource) -> None:
        self.registry.register(EngineStatsCollector(model, source))

    def observe_generation(
        self, model: str, ttft_s: float | None, e2e_s: float, output_tokens: int
    ) -> None:
        self.e2e.labels(model).observe(e2e_s)
        self.duration.labels(model).observe(e2e_s)
        if ttft_s is None:
            return
        self.ttft.labels(model).observe(ttft_s)
        self.inf_ttft.labels(model).observe(ttft_s)
        if output_tokens > 1 and e2e_s > ttft_s:
            self.tpot.labels(model).observe((e2e_s - ttft_s) / (output_tokens - 1))
        if e2e_s > 0:
            self.tokens_per_second.labels(model).observe(output_tokens / e2e_s)

    def count_request(self, model: str, status: int) -> None:
        self.requests.labels(model, str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
