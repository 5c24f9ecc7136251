"""The gateway's Prometheus metrics, on a registry the app owns (two apps in one process never
share series). Labels stay bounded: model and pool names come from the fleet file, the status
is an HTTP code, the rule is a rule name; never a user id or key."""

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from inferplane.ledger.metrics import CostMetrics, register_cost_metrics
from inferplane.telemetry import names

UNKNOWN = "_unknown"  # the model label when the client named a model the fleet lacks


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram | None]] = {}
        self._decisions: dict[str, Counter] = {}
        r = self.registry
        self.requests = Counter(
            "inference_request", "Requests by outcome.", ["model", "pool", "status"], registry=r
        )
        # Same names, labels and buckets as the replicas' (telemetry.names), so one query
        # (histogram_quantile over both) reads either.
        self.duration = names.histogram(names.REQUEST_DURATION, r)
        self.ttft = names.histogram(names.TIME_TO_FIRST_TOKEN, r)
        self.cost: CostMetrics = register_cost_metrics(r)
        self.decisions = Counter(
            "inference_route_decisions", "Routing decisions by rule.", ["rule"], registry=r
        )
        self.retries = Counter(
            "inference_gateway_retries",
            "Attempts retried on another replica.",
            ["pool"],
            registry=r,
        )
        self.ejections = Counter(
            "inference_gateway_ejections", "Replicas ejected as outliers.", ["pool"], registry=r
        )
        self.replicas_ready = Gauge(
            "inference_gateway_replicas_ready", "Routable replicas per pool.", ["pool"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def observe(self, model: str, pool: str, status: int, seconds: float) -> None:
        # Children are looked up once per label set: labels() takes a lock and builds a key.
        children = self._children.get((model, pool, status))
        if children is None:
            counter = self.requests.labels(model, pool, str(status))
            histogram = self.duration.labels(model, pool) if pool else None
            children = self._children[(model, pool, status)] = (counter, histogram)
        children[0].inc()
        if children[1] is not None:
            children[1].observe(seconds)

    def decided(self, rule: str) -> None:
        child = self._decisions.get(rule)
        if child is None:
            child = self._decisions[rule] = self.decisions.labels(rule)
        child.inc()
