"""The status board's numbers from a real registry, and the page as an ASGI app."""

import json
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from inferplane.telemetry import names
from inferplane.telemetry.ui import StatusBoard, bucket_quantile, with_status_page


@dataclass
class Replica:
    id: str
    url: str
    state: str = "ready"
    in_flight: int = 0
    waiting: int = 0
    running: int = 0
    kv_usage: float = 0.0
    ewma_ttft_s: float = 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _board() -> tuple[StatusBoard, CollectorRegistry, Clock, dict[str, list[Replica]]]:
    registry = CollectorRegistry()
    pools = {
        "chat": [Replica("chat/a:1", "http://a:1", waiting=2), Replica("chat/b:1", "http://b:1")],
        "embed": [Replica("embed/c:1", "http://c:1", state="starting", waiting=1)],
    }
    clock = Clock()
    board = StatusBoard(lambda: pools, {"chat": "m", "embed": "e"}, registry, clock, clock)
    return board, registry, clock, pools


def test_samples_turn_counters_into_rates_and_a_ttft_median() -> None:
    board, registry, clock, _ = _board()
    requests = names.counter(names.REQUESTS, registry)
    ttft = names.histogram(names.TIME_TO_FIRST_TOKEN, registry)
    cost = names.counter(names.COST_DOLLARS, registry)
    board.sample()  # the baseline
    requests.labels("m", "chat", "200").inc(8)
    requests.labels("m", "chat", "503").inc(2)
    for seconds in (0.03, 0.03, 0.07, 0.07):
        ttft.labels("m", "chat").observe(seconds)
    cost.labels("m", "team").inc(0.01)
    clock.now += 2.0
    board.sample()
    clock.now += 0.5
    board.sample()  # too soon: no point
    (point,) = board.points
    assert point.requests_per_s == 5.0
    assert point.ttft_p50_s == 0.04  # the 0.02..0.04 bucket holds the median rank exactly
    assert point.queue_depth == 3.0
    assert abs(point.cost_per_hour - 18.0) < 1e-9


def test_status_json_shape() -> None:
    board, _, clock, pools = _board()
    board.sample()
    clock.now += 1.0
    pools["chat"][1].state = "failed"
    status = json.loads(json.dumps(board.status(), allow_nan=False))
    assert status["totals"] == {
        "pools": 2,
        "replicas": 3,
        "ready": 1,
        "requests": 0.0,
        "latest": status["totals"]["latest"],
    }
    assert [p["name"] for p in status["pools"]] == ["chat", "embed"]
    assert status["pools"][0]["model"] == "m"
    assert status["pools"][0]["replicas"][0]["id"] == "chat/a:1"
    assert set(status["series"]) == {
        "t",
        "requests_per_s",
        "ttft_p50_s",
        "queue_depth",
        "cost_per_hour",
    }
    assert status["series"]["ttft_p50_s"] == [None]  # no request: a gap, not a zero


def test_bucket_quantile_matches_prometheus_interpolation() -> None:
    buckets = [(0.1, 0.0), (0.2, 10.0), (0.4, 20.0), (float("inf"), 20.0)]
    assert bucket_quantile(0.5, buckets) == 0.2
    assert abs((bucket_quantile(0.75, buckets) or 0) - 0.3) < 1e-12
    assert bucket_quantile(0.5, []) is None
    assert bucket_quantile(0.99, [(0.1, 0.0), (float("inf"), 5.0)]) == 0.1


async def _inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"inner"})


async def test_the_page_is_served_at_ui_and_the_rest_goes_to_the_app() -> None:
    board, *_ = _board()
    app = with_status_page(_inner, board)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        assert (await client.get("/ui")).status_code == 308
        page = await client.get("/ui/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "app.js" in page.text
        assert (
            (await client.get("/ui/app.js")).headers["content-type"].startswith("text/javascript")
        )
        assert (await client.get("/ui/style.css")).status_code == 200
        status = (await client.get("/ui/status.json")).json()
        assert status["totals"]["replicas"] == 3
        assert (await client.get("/ui/nope")).status_code == 404
        assert (await client.post("/ui/status.json")).status_code == 405
        assert (await client.get("/v1/models")).text == "inner"
        assert (await client.get("/uix")).text == "inner"
