"""/metrics: vLLM-compatible names (so vLLM dashboards work) and the platform's inference_*.

Names, help texts, labels and buckets all come from `inferplane.telemetry.names`, so the
dashboards and alert rules built from the same table always match what a replica publishes.
Engine-wide counts are read from `EngineClient.stats()` at scrape time by a collector; request
latencies are observed by the routes into histograms; GPUs (where there are any) are read from
NVML at scrape time. Everything lives on a registry the app owns, so two apps in one process
never share series.
"""

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from inferplane.engine.core.protocol import EngineStats
from inferplane.telemetry import names
from inferplane.telemetry.gpu import GpuCollector, NvmlApi
from inferplane.telemetry.names import MetricSpec

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

    def _family(self, spec: MetricSpec, value: float) -> Metric:
        family_type = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
        # The engine's families carry one label: model_name (vllm:*) or model (inference_*).
        family = family_type(spec.name, spec.help, labels=spec.labels[:1])
        family.add_metric([self.model], value)
        return family

    def _gauges(self, s: EngineStats) -> Iterator[Metric]:
        hit_rate = s.prefix_cache_hits / s.prefix_cache_queries if s.prefix_cache_queries else 0.0
        yield self._family(names.VLLM_NUM_REQUESTS_RUNNING, s.num_running)
        yield self._family(names.VLLM_NUM_REQUESTS_WAITING, s.num_waiting)
        yield self._family(names.VLLM_GPU_CACHE_USAGE, s.kv_usage)
        yield self._family(names.VLLM_KV_CACHE_USAGE, s.kv_usage)
        yield self._family(names.QUEUE_DEPTH, s.num_waiting)
        yield self._family(names.CACHE_HIT_RATE, hit_rate)
        yield self._family(names.MODEL_SLEEPING, 1.0 if s.sleeping else 0.0)

    def _counters(self, s: EngineStats) -> Iterator[Metric]:
        yield self._family(names.VLLM_PREFIX_CACHE_QUERIES, s.prefix_cache_queries)
        yield self._family(names.VLLM_PREFIX_CACHE_HITS, s.prefix_cache_hits)
        yield self._family(names.VLLM_NUM_PREEMPTIONS, s.num_preemptions)
        yield self._family(names.VLLM_PROMPT_TOKENS, s.prompt_tokens_total)
        yield self._family(names.VLLM_GENERATION_TOKENS, s.generation_tokens_total)
        yield self._family(names.VLLM_KV_CACHE_EVICTIONS, s.kv_evictions)


class ServerMetrics:
    """The server's metric objects on one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r, model = self.registry, ("model",)
        self.ttft = names.histogram(names.VLLM_TTFT, r)
        self.tpot = names.histogram(names.VLLM_TPOT, r)
        self.e2e = names.histogram(names.VLLM_E2E, r)
        # A replica does not know its pool: the gateway adds `pool` to its own series.
        self.duration = names.histogram(names.REQUEST_DURATION, r, model)
        self.inf_ttft = names.histogram(names.TIME_TO_FIRST_TOKEN, r, model)
        self.tokens_per_second = names.histogram(names.TOKENS_PER_SECOND, r, model)
        self.requests = names.counter(names.REQUESTS, r, ("model", "status"))
        self.load_seconds = _load_seconds(r)

    def watch_engine(self, model: str, source: StatsSource) -> None:
        self.registry.register(EngineStatsCollector(model, source))

    def watch_gpus(self, api: NvmlApi) -> GpuCollector:
        """Publish every GPU NVML sees; without one this logs once and exports nothing."""
        collector = GpuCollector(api)
        self.registry.register(collector)
        return collector

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

    def record_load(self, model: str, seconds: float) -> None:
        """A replica's own load is its model's cold -> hot move."""
        self.load_seconds.labels(model, "cold", "hot").observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _load_seconds(registry: CollectorRegistry) -> Histogram:
    return names.histogram(names.MODEL_LOAD_SECONDS, registry)
