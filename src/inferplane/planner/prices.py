"""GPU prices for the planner, joined from the ledger's pricing catalog (the single source).

The planner's core takes a `PriceLookup`, a plain function (gpu, capacity) -> $/GPU-hour or
None, so it neither knows nor cares where prices come from; this module builds one from a
`PriceCatalog` and one provider.
"""

from collections.abc import Callable
from dataclasses import dataclass

from inferplane.ledger.pricing import PriceCatalog, default_catalog

PriceLookup = Callable[[str, str], float | None]
CAPACITIES = ("on-demand", "spot", "reserved")


@dataclass(frozen=True)
class CatalogPrices:
    """Prices of one provider in a catalog, as a PriceLookup."""

    catalog: PriceCatalog
    provider: str

    def __call__(self, gpu: str, capacity: str) -> float | None:
        return self.catalog.hourly_usd(gpu, self.provider, capacity)

    def describe(self) -> str:
        dates = sorted({str(p.taken) for p in self.catalog.prices() if p.provider == self.provider})
        when = f" as of {', '.join(dates)}" if dates else ""
        return f"prices: {self.provider} $/GPU-hour from the ledger's pricing catalog{when}"


def provider_prices(provider: str, catalog: PriceCatalog | None = None) -> CatalogPrices:
    """The lookup for `provider` in `catalog` (the built-in list prices by default)."""
    chosen = catalog if catalog is not None else default_catalog()
    chosen.hourly_usd("T4", provider)  # raises ValueError with advice for an unknown provider
    return CatalogPrices(chosen, provider)
