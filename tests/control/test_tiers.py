from inferplane.config.schema import DailyWindow, TierBudgets
from inferplane.control.tiers import TierManager, TierModel

GIB = 1024**3


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def model(name: str, hot: int = 10, warm: int = 5, **kwargs: object) -> TierModel:
    return TierModel(name, hot * GIB, warm * GIB, **kwargs)  # type: ignore[arg-type]


def manager(*models: TierModel, **budgets: object) -> tuple[TierManager, FakeTime]:
    clock = FakeTime()
    return TierManager(list(models), TierBudgets(**budgets), clock), clock  # type: ignore[arg-type]


def test_a_request_promotes_cold_to_hot_and_is_timed() -> None:
    tiers, clock = manager(model("a"))
    [step] = tiers.on_request("a")
    assert (step.source, step.target, step.action) == ("cold", "hot", "start")
    clock.now = 12.5
    timing = tiers.finished("a")
    assert timing is not None and (timing.source, timing.target, timing.seconds) == (
        "cold", "hot", 12.5)  # fmt: skip
    assert tiers.finished("a") is None
    assert tiers.on_request("a") == []


def test_idle_models_demote_to_warm_then_cold() -> None:
    tiers, clock = manager(model("a"), model("b", keep_warm=True), idle_to_warm=60,
                           idle_to_cold=300)  # fmt: skip
    tiers.on_request("a")
    tiers.on_request("b")
    clock.now = 30
    assert tiers.tick() == []
    clock.now = 60
    assert [(t.model, t.action) for t in tiers.tick()] == [("a", "sleep"), ("b", "sleep")]
    clock.now = 300
    assert [(t.model, t.target) for t in tiers.tick()] == [("a", "cold")]  # b keeps warm
    assert (tiers.tier("a"), tiers.tier("b")) == ("cold", "warm")
    [wake] = tiers.on_request("b")
    assert wake.action == "wake"


def test_hot_budget_demotes_the_lowest_score_not_the_oldest() -> None:
    tiers, clock = manager(model("busy"), model("stray"), model("new"), hot_gib=20)
    for _ in range(20):
        tiers.on_request("busy")
    clock.now = 100
    tiers.on_request("stray")  # used more recently than busy, but once
    clock.now = 110
    plan = tiers.on_request("new")
    assert [(t.model, t.source, t.target) for t in plan] == [
        ("stray", "hot", "warm"), ("new", "cold", "hot")]  # fmt: skip
    assert "hot memory budget" in plan[0].reason


def test_scores_decay_with_the_half_life() -> None:
    tiers, clock = manager(model("a"))
    tiers.on_request("a")
    tiers.on_request("a")
    clock.now = 600
    assert abs(tiers.score("a") - 1.0) < 1e-9


def test_warm_budget_stops_the_lowest_warm_model() -> None:
    tiers, clock = manager(model("a"), model("b"), model("c"), hot_gib=10, warm_gib=5)
    tiers.on_request("a")
    clock.now = 1
    tiers.on_request("b")  # a -> warm
    clock.now = 2
    plan = tiers.on_request("c")  # b -> warm; warm over budget: a (lower score now) -> cold
    moves = [(t.model, t.target) for t in plan]
    assert moves == [("b", "warm"), ("c", "hot"), ("a", "cold")]


def test_prewarm_window_promotes_ahead_of_traffic() -> None:
    window = DailyWindow(start="08:00", end="09:00")
    tiers, clock = manager(model("a", prewarm=(window,)), idle_to_warm=60)
    clock.now = 8 * 3600 + 60
    [step] = tiers.tick()
    assert (step.target, step.reason) == ("hot", "prewarm window")
    clock.now = 8 * 3600 + 1800
    assert tiers.tick() == []  # stays hot inside its window, idle or not
    clock.now = 9 * 3600 + 10
    assert [t.target for t in tiers.tick()] == ["warm"]


def test_a_model_bigger_than_the_budget_is_still_served() -> None:
    tiers, _ = manager(model("huge", hot=50), hot_gib=20)
    assert [t.target for t in tiers.on_request("huge")] == ["hot"]


def test_busy_keeps_a_model_from_idling_and_keep_hot_never_demotes() -> None:
    tiers, clock = manager(model("a"), model("m", keep_hot=True), idle_to_warm=10)
    tiers.on_request("a")
    tiers.promote("m", "minimum 1")
    clock.now = 8.0
    tiers.busy("a")  # a request still waits
    clock.now = 15.0
    assert tiers.tick() == []
    clock.now = 30.0
    [step] = tiers.tick()
    assert (step.model, step.target) == ("a", "warm")
    assert tiers.demote("m", "cold", "autoscaler") == []
    assert tiers.tier("m") == "hot"


def test_demote_stops_keep_warm_at_warm() -> None:
    tiers, _ = manager(model("a", keep_warm=True))
    tiers.promote("a", "prewarm")
    [step] = tiers.demote("a", "cold", "autoscaler: idle")
    assert (step.source, step.target, step.action) == ("hot", "warm", "sleep")
    assert tiers.pending_target("a") == "warm"
