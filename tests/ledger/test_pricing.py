from datetime import date

import pytest

from inferplane.config.schema import Pricing
from inferplane.ledger.price_list import CAPACITIES, GPU_NAMES, LIST_DATE, PROVIDERS
from inferplane.ledger.pricing import (
    PriceCatalog,
    canonical_gpu,
    catalog_for,
    default_catalog,
)


def test_every_gpu_is_priced_somewhere_and_dated() -> None:
    catalog = default_catalog()
    for gpu in GPU_NAMES:
        assert any(catalog.hourly_usd(gpu, p) for p in PROVIDERS), gpu
    assert all(price.taken == LIST_DATE == date(2026, 11, 1) for price in catalog.prices())


def test_every_provider_has_prices() -> None:
    catalog = default_catalog()
    for provider in PROVIDERS:
        assert any(catalog.hourly_usd(gpu, provider) for gpu in GPU_NAMES), provider


def test_spot_and_reserved_are_cheaper_than_on_demand() -> None:
    catalog = default_catalog()
    for price in catalog.prices():
        on_demand = catalog.hourly_usd(price.gpu, price.provider, "on-demand")
        assert on_demand is not None
        assert price.hourly_usd <= on_demand


def test_lookup_defaults_and_aliases() -> None:
    catalog = default_catalog()
    assert catalog.hourly_usd("H100") == catalog.hourly_usd("H100-SXM", "runpod", "on-demand")
    assert catalog.hourly_usd("h100", "AWS") == pytest.approx(6.88)
    assert catalog.hourly_usd("A100", "gcp", "spot") == catalog.hourly_usd(
        "A100-80GB", "gcp", "spot"
    )


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("H100", "H100-SXM"),
        ("nvidia h100 pcie", "H100-PCIe"),
        ("a100", "A100-80GB"),
        ("A100 40GB", "A100-40GB"),
        ("a100_80gb", "A100-80GB"),
        ("l40s", "L40S"),
        ("NVIDIA-T4", "T4"),
        ("a10", "A10G"),
    ],
)
def test_aliases(alias: str, name: str) -> None:
    assert canonical_gpu(alias) == name


def test_not_offered_is_none() -> None:
    catalog = default_catalog()
    assert catalog.hourly_usd("H100-PCIe", "aws") is None
    assert catalog.hourly_usd("T4", "runpod") is None
    assert catalog.hourly_usd("H100", "lambda", "spot") is None


@pytest.mark.parametrize(
    ("args", "advice"),
    [
        (("V100",), "unknown GPU 'V100': use one of"),
        (("H100", "azure"), "unknown provider 'azure': use one of"),
        (("H100", "aws", "preemptible"), "unknown capacity 'preemptible': use one of"),
    ],
)
def test_unknown_names_raise_with_advice(args: tuple[str, ...], advice: str) -> None:
    with pytest.raises(ValueError, match=advice):
        default_catalog().hourly_usd(*args)


def test_overrides_make_a_new_catalog() -> None:
    base = default_catalog()
    catalog = base.with_overrides("runpod", {"H100": 2.49, "L4/spot": 0.1, "T4": 0.2})
    assert catalog.hourly_usd("H100-SXM") == 2.49
    assert catalog.hourly_usd("L4", capacity="spot") == 0.1
    assert catalog.hourly_usd("T4") == 0.2  # a GPU the list lacks can be added
    assert base.hourly_usd("H100") == 2.69  # the original is unchanged
    price = catalog.price("H100")
    assert price is not None and price.source == "fleet"


def test_catalog_for_a_fleet_pricing_section() -> None:
    catalog = catalog_for(Pricing(provider="lambda", gpu_hourly_usd={"H100": 2.0}))
    assert isinstance(catalog, PriceCatalog)
    assert catalog.hourly_usd("H100", "lambda") == 2.0
    assert catalog.hourly_usd("H100", "runpod") == 2.69


@pytest.mark.parametrize(
    ("overrides", "advice"),
    [({"H100": -1.0}, "must be >= 0"), ({"H100/cheap": 1.0}, "unknown capacity")],
)
def test_bad_overrides(overrides: dict[str, float], advice: str) -> None:
    with pytest.raises(ValueError, match=advice):
        default_catalog().with_overrides("runpod", overrides)


def test_capacities_are_the_schema_ones() -> None:
    assert set(CAPACITIES) == {"on-demand", "spot", "reserved"}
