from pathlib import Path

from inferplane.config.schema import FleetConfig
from inferplane.gateway.admission.auth import ApiKey
from inferplane.gateway.books.accounting import Accountant, Finished
from inferplane.gateway.books.metrics import GatewayMetrics
from inferplane.gateway.books.tap import Usage
from inferplane.ledger.spool import SpoolAppender, decode, segments
from inferplane.ledger.usage import ROW_FIELDS, UsageRecord, hash_user
from tests.full_disk import files_limited_to

FLEET = FleetConfig.model_validate(
    {
        "pools": {
            "main": {
                "model": "chat",
                "endpoints": ["http://127.0.0.1:1"],
                "resources": {"gpu": "L4"},
            }
        },
        "routes": [{"name": "default", "pool": "main"}],
        "pricing": {"provider": "runpod", "gpu_hourly_usd": {"L4": 3600}},  # $1 a GPU-second
    }
)
KEY = ApiKey(name="payer", key_hash="sha256:" + "0" * 64, team="research")


class Clocks:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + 1_000_000.0


def _finished(request_id: str, started: float, ended: float, **changes: object) -> Finished:
    fields: dict[str, object] = {
        "request_id": request_id,
        "key": KEY,
        "user": "u-1",
        "model": "chat",
        "pool": "main",
        "replica": "main-0",
        "model_version": "v1",
        "started": started,
        "ended": ended,
        "ttft_s": None,
        "status": 200,
        "usage": Usage(10, 5),
    }
    fields.update(changes)
    return Finished(**fields)  # type: ignore[arg-type]


def _records(folder: Path) -> list[UsageRecord]:
    records = []
    for path in segments(folder):
        for line in path.read_bytes().splitlines():
            columns, rows = decode(line)
            assert columns == ROW_FIELDS
            records += [UsageRecord(*row) for row in rows]
    return records


def test_a_sweep_spools_priced_records_and_counts_the_cost(tmp_path: Path) -> None:
    clocks, metrics = Clocks(), GatewayMetrics()
    spool = SpoolAppender(tmp_path, "gateway-0")
    accountant = Accountant(FLEET, (), metrics.cost, spool, clocks.monotonic, clocks.wall, "s")
    accountant.start()
    for request_id, start in (("a", 100.0), ("b", 101.0)):
        accountant.begin(request_id, start)
    accountant.finish(_finished("a", 100.0, 102.0))
    clocks.now = 103.5
    assert accountant.sweep() == 0  # "b" is still in flight since 101: nothing after is final
    accountant.finish(_finished("b", 101.0, 103.0, user=None, status=502, usage=Usage(20, 0)))
    assert accountant.sweep() == 2
    accountant.close()
    a, b = sorted(_records(tmp_path), key=lambda record: record.request_id)
    assert a.time == 1_000_100.0 and a.duration_s == 2.0 and a.status == "ok"
    assert (a.key, a.team, a.gpu_type, a.model_version) == ("payer", "research", "L4", "v1")
    assert a.user_hash == hash_user("u-1", "s") and b.user_hash == ""
    assert (b.prompt_tokens, b.completion_tokens, b.status) == (20, 0, "http_502")
    assert a.gpu_seconds + b.gpu_seconds == 3.0  # busy from 100 to 103
    assert a.cost_micro_usd + b.cost_micro_usd == 3_000_000
    labels = {"model": "chat", "team": "research"}
    assert metrics.registry.get_sample_value("inference_cost_dollars_total", labels) == 3.0


def test_records_a_full_disk_refused_are_spooled_once_there_is_room(tmp_path: Path) -> None:
    clocks, metrics = Clocks(), GatewayMetrics()
    spool = SpoolAppender(tmp_path, "gateway-0")
    accountant = Accountant(FLEET, (), metrics.cost, spool, clocks.monotonic, clocks.wall, "s")
    accountant.start()
    accountant.begin("a", 100.0)
    accountant.finish(_finished("a", 100.0, 101.0))
    clocks.now = 102.0
    with files_limited_to(10):  # the disk is full
        assert accountant.sweep() == 1  # priced and counted all the same
    assert _records(tmp_path) == []
    accountant.begin("b", 102.0)
    accountant.finish(_finished("b", 102.0, 103.0))
    clocks.now = 104.0
    with files_limited_to(10):
        assert accountant.sweep() == 1
    assert accountant.sweep() == 0  # room again: what waited goes out, oldest first
    accountant.close()
    assert [record.request_id for record in _records(tmp_path)] == ["a", "b"]
    labels = {"model": "chat", "team": "research"}
    assert metrics.registry.get_sample_value("inference_cost_dollars_total", labels) == 2.0
