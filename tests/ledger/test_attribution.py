import random
from decimal import ROUND_HALF_UP, Decimal

import pytest

from inferplane.ledger.attribution import Charge, ReplicaMeter, Step, attribute, split


def test_split_adds_up_and_follows_weights() -> None:
    assert split(10, {"a": 1, "b": 1}) == {"a": 5, "b": 5}
    assert split(10, {"a": 1, "b": 2}) == {"a": 3, "b": 7}
    assert split(7, {"a": 1, "b": 1, "c": 1}) == {"a": 3, "b": 2, "c": 2}
    assert split(5, {"a": 0}) == {}
    parts = split(1_000_003, {str(i): 0.1 * i + 1 for i in range(17)})
    assert sum(parts.values()) == 1_000_003


def test_one_request_in_an_hour() -> None:
    result = attribute([Step(0.0, 10.0, {"r1": 100})], 0.0, 3600.0, hourly_usd=3.6)
    assert result.requests["r1"] == Charge(gpu_us=10_000_000, cost_micro_usd=10_000)
    assert result.idle == Charge(gpu_us=3_590_000_000, cost_micro_usd=3_590_000)


def test_tokens_share_a_step() -> None:
    result = attribute([Step(0.0, 4.0, {"a": 30, "b": 10})], 0.0, 4.0, hourly_usd=36, gpus=2)
    assert result.requests["a"].gpu_seconds == 6.0
    assert result.requests["b"].gpu_seconds == 2.0
    assert result.idle == Charge(0, 0)


def test_overlapping_steps_are_not_counted_twice() -> None:
    steps = [Step(0.0, 2.0, {"a": 1}), Step(1.0, 3.0, {"b": 1})]
    result = attribute(steps, 0.0, 3.0, hourly_usd=1.0)
    assert result.requests["a"].gpu_seconds + result.requests["b"].gpu_seconds == 3.0


def _random_steps(rng: random.Random, n: int) -> list[Step]:
    steps, now = [], 1_700_000_000.0
    for _ in range(n):
        now += rng.choice([0.0, 0.0, rng.uniform(0.0, 30.0)])  # idle gaps, some none
        length = rng.uniform(0.001, 0.5)
        active = rng.sample(range(400), rng.randint(1, 8))
        steps.append(Step(now, now + length, {f"r{i}": rng.randint(1, 512) for i in active}))
        now += length
    return steps


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@pytest.mark.parametrize(("price", "gpus"), [(2.69, 1), (6.88, 8), (0.43, 2)])
def test_books_close_to_the_cent(price: float, gpus: int) -> None:
    steps = _random_steps(random.Random(7), 3000)
    start, end = steps[0].start - 12.5, steps[-1].end + 61.25
    result = attribute(steps, start, end, hourly_usd=price, gpus=gpus)
    assert len(result.requests) == 400
    parts = [*result.requests.values(), result.idle]
    total_gpu_us = sum(part.gpu_us for part in parts)
    total_micro = sum(part.cost_micro_usd for part in parts)
    assert total_gpu_us == round((end - start) * 1_000_000) * gpus
    gpu_hours = Decimal(total_gpu_us) / 3_600_000_000
    exact = gpu_hours * Decimal(str(price))
    assert Decimal(total_micro) / 1_000_000 <= exact < Decimal(total_micro + 1) / 1_000_000
    assert _cents(Decimal(total_micro) / 1_000_000) == _cents(exact)
    assert result.idle.gpu_us > 0


def test_online_meter_closes_the_books_with_interleaved_charges() -> None:
    rng = random.Random(3)
    meter = ReplicaMeter(hourly_usd=2.49, gpus=1, start=0.0)
    charged: list[Charge] = []
    now = 0.0
    for i in range(2000):
        now += rng.uniform(0.0, 2.0)
        meter.observe(Step(now, now + 0.05, {f"r{i}": 10, f"r{i + 1}": 5}))
        now += 0.05
        charged.append(meter.charge(f"r{i}"))
        if i % 100 == 0 and (idle := meter.charge_idle(now)):
            charged.append(idle.charge)
    charged.append(meter.charge("r2000"))
    idle = meter.charge_idle(now + 5)
    assert idle is not None
    charged.append(idle.charge)
    assert meter.pending() == ()
    total_us = sum(c.gpu_us for c in charged)
    assert total_us == round((now + 5) * 1_000_000)
    assert sum(c.cost_micro_usd for c in charged) == total_us * 249 // 360_000


def test_idle_charges_are_contiguous() -> None:
    meter = ReplicaMeter(hourly_usd=1.0, gpus=1, start=100.0)
    first = meter.charge_idle(160.0)
    meter.observe(Step(170.0, 180.0, {"a": 1}))
    second = meter.charge_idle(200.0)
    assert first is not None and second is not None
    assert (first.start, first.end, first.charge.gpu_seconds) == (100.0, 160.0, 60.0)
    assert (second.start, second.end, second.charge.gpu_seconds) == (160.0, 200.0, 30.0)
    assert meter.charge_idle(200.0) is None


def test_bad_rates_raise() -> None:
    with pytest.raises(ValueError, match="gpus >= 1"):
        ReplicaMeter(hourly_usd=1.0, gpus=0, start=0.0)
