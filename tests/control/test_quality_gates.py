"""Quality gates of a rollout: a canary whose answers are less confident (lower mean token
logprob) is rolled back with that reason while its errors and latency match the baseline's;
negative feedback and drift gates likewise; gates left unset judge nothing. Windows come from
the gateway's own quality book, as the rollout runtime reads them."""

from prometheus_client import CollectorRegistry

from inferplane.control import gate_window
from inferplane.control.rollout import Gates, Rollout, RolloutPlan, WindowMetrics
from inferplane.gateway.books.metrics import GatewayMetrics
from inferplane.gateway.books.quality import QualityBook
from inferplane.gateway.books.tap import Usage

BASE, CANARY = "chat", "chat.rollout"


def _serve(book: QualityBook, metrics: GatewayMetrics, pool: str, logprob: float, n: int) -> None:
    for _ in range(n):
        usage = Usage(20, 8, mean_logprob=logprob, low_confidence_share=0.1)
        book.answered("chat", "v2" if pool == CANARY else "v1", pool, usage)
        metrics.observe("chat", pool, 200, 0.05)
        metrics.ttft.labels("chat", pool).observe(0.02)


def _window(book: QualityBook, metrics: GatewayMetrics, pool: str) -> WindowMetrics:
    now = gate_window.read(metrics.requests, metrics.ttft, pool, book.reading(pool))
    return gate_window.window(now, gate_window.PoolCounts())


def test_a_less_confident_canary_is_rolled_back_on_confidence_alone() -> None:
    book, metrics = QualityBook(CollectorRegistry()), GatewayMetrics()
    _serve(book, metrics, BASE, -0.6, 60)
    _serve(book, metrics, CANARY, -1.9, 60)  # a perturbed copy: same speed, no errors
    canary, baseline = _window(book, metrics, CANARY), _window(book, metrics, BASE)
    assert (canary.errors, canary.ttft_p95_s) == (baseline.errors, baseline.ttft_p95_s)
    assert canary.mean_logprob is not None and abs(canary.mean_logprob + 1.9) < 1e-9
    plan = RolloutPlan(BASE, "chat-v2", hold_s=0, gates=Gates(logprob_drop=0.5))
    decision = Rollout.start(plan).evaluate(0.0, canary, baseline)
    assert decision.action == "rollback"
    assert decision.reason.startswith("mean logprob -1.900 vs baseline -0.600")
    unguarded = RolloutPlan(BASE, "chat-v2", hold_s=0)  # no confidence gate: it advances
    assert Rollout.start(unguarded).evaluate(0.0, canary, baseline).action == "advance"


def test_negative_feedback_and_drift_gates() -> None:
    gates = Gates(min_requests=10, feedback_margin=0.05, drift_margin=0.1)
    baseline = WindowMetrics(100, 0, negative_feedback_rate=0.02, drift_score=0.05)
    worse = WindowMetrics(100, 0, negative_feedback_rate=0.2, drift_score=0.4)
    plan = RolloutPlan(BASE, "chat-v2", hold_s=0, gates=gates)
    reason = Rollout.start(plan).evaluate(0.0, worse, baseline).reason
    assert "negative feedback rate 0.200 vs baseline 0.020" in reason
    assert "drift score 0.400 vs baseline 0.050" in reason


def test_negative_feedback_is_counted_per_pool() -> None:
    book = QualityBook(CollectorRegistry())
    book.answered("chat", "v1", CANARY, None)
    book.answered("chat", "v1", CANARY, None)
    book.negative(CANARY)
    now = gate_window.read(GatewayMetrics().requests, GatewayMetrics().ttft, CANARY,
                           book.reading(CANARY))  # fmt: skip
    window = gate_window.window(now, gate_window.PoolCounts())
    assert window.negative_feedback_rate == 0.5 and window.mean_logprob is None
