import pytest

from inferplane.ledger.pricing import default_catalog
from inferplane.planner.prices import provider_prices


def test_prices_come_from_the_ledger_catalog() -> None:
    prices = provider_prices("aws")
    assert prices("H100-SXM", "spot") == default_catalog().hourly_usd("H100-SXM", "aws", "spot")
    assert prices("H100-PCIe", "on-demand") is None  # not offered: no guess
    assert "aws $/GPU-hour from the ledger's pricing catalog as of" in prices.describe()


def test_fleet_overrides_flow_through() -> None:
    catalog = default_catalog().with_overrides("runpod", {"H100-SXM": 1.0})
    assert provider_prices("runpod", catalog)("H100-SXM", "on-demand") == 1.0


def test_unknown_provider() -> None:
    with pytest.raises(ValueError, match="unknown provider"):
        provider_prices("acme")
