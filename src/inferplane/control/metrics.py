"""The control plane's metrics, on the gateway's registry so one /metrics shows both.

inference_autoscaler_decisions_total{pool,direction,reason}: every decision, with its cause
(a short bounded word from the autoscaler, never the free-text reason).
inference_pool_desired_replicas{pool}; inference_replica_restarts_total{pool};
inference_model_load_seconds{model,from,to}: each tier transition, timed (its name, labels and
buckets from telemetry.names, shared with the model server's own load).
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from inferplane.control.autoscaler import ScaleDecision
from inferplane.telemetry import names


class ControlMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "inference_autoscaler_decisions",
            "Autoscaler decisions by direction and cause.",
            ["pool", "direction", "reason"],
            registry=registry,
        )
        self.desired = Gauge(
            "inference_pool_desired_replicas",
            "Replicas the autoscaler wants per pool.",
            ["pool"],
            registry=registry,
        )
        self.restarts = Counter(
            "inference_replica_restarts", "Crashed replicas restarted.", ["pool"], registry=registry
        )
        self.load_seconds: Histogram = names.histogram(names.MODEL_LOAD_SECONDS, registry)

    def decided(self, pool: str, decision: ScaleDecision) -> None:
        self.decisions.labels(pool, decision.direction, decision.cause).inc()
        self.desired.labels(pool).set(decision.desired)

    @staticmethod
    def pool_requests(requests: Counter, pool: str) -> float:
        """Requests the gateway finished for `pool`, over every model and status."""
        total = 0.0
        for metric in requests.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels.get("pool") == pool:
                    total += sample.value
        return total
