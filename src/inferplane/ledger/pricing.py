"""The pricing catalog: $ per GPU-hour by GPU, provider and capacity, with fleet-file overrides.

The built-in prices (price_list.py) are list prices as of 2026-11, to be overridden in the fleet
file with what you actually pay: `pricing: {provider: runpod, gpu_hourly_usd: {H100: 2.49}}`.
An override key is a GPU name (it sets the on-demand price) or `GPU/capacity`, such as
`H100/spot`. A provider that does not offer a GPU has no price (None), never a guess.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Literal, cast

from inferplane.config.schema import Pricing
from inferplane.ledger.price_list import (
    CAPACITIES,
    GPU_ALIASES,
    GPU_NAMES,
    LIST_DATE,
    LIST_PRICES,
    PROVIDERS,
)

Capacity = Literal["on-demand", "spot", "reserved"]
PriceKey = tuple[str, str, str]  # (gpu, provider, capacity)


@dataclass(frozen=True)
class Price:
    """One price: what one GPU of a kind costs per hour, and when the figure was taken."""

    gpu: str
    provider: str
    capacity: Capacity
    hourly_usd: float
    taken: date
    source: str = "list"  # "list" (built in) or "fleet" (an override)


def _normalise(name: str) -> str:
    key = name.strip().lower().replace("nvidia", "")
    return "".join(ch for ch in key if ch not in " -_")


def canonical_gpu(name: str) -> str:
    """The catalog's name for a GPU ("h100" -> "H100-SXM"); ValueError with advice if unknown."""
    key = _normalise(name)
    for canonical in GPU_NAMES:
        if _normalise(canonical) == key:
            return canonical
    if key in GPU_ALIASES:
        return GPU_ALIASES[key]
    raise ValueError(f"unknown GPU {name!r}: use one of {', '.join(GPU_NAMES)}")


def canonical_provider(name: str) -> str:
    provider = name.strip().lower()
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {name!r}: use one of {', '.join(PROVIDERS)}")
    return provider


def canonical_capacity(name: str) -> Capacity:
    capacity = name.strip().lower().replace("ondemand", "on-demand").replace("_", "-")
    if capacity not in CAPACITIES:
        raise ValueError(f"unknown capacity {name!r}: use one of {', '.join(CAPACITIES)}")
    return cast(Capacity, capacity)


class PriceCatalog:
    """An immutable set of prices; overrides make a new catalog."""

    def __init__(self, prices: Iterable[Price]) -> None:
        table: dict[PriceKey, Price] = {(p.gpu, p.provider, p.capacity): p for p in prices}
        self._prices: Mapping[PriceKey, Price] = MappingProxyType(table)

    def price(
        self, gpu: str, provider: str = "runpod", capacity: str = "on-demand"
    ) -> Price | None:
        """The price of one GPU-hour, or None where the provider does not offer it."""
        key = (canonical_gpu(gpu), canonical_provider(provider), canonical_capacity(capacity))
        return self._prices.get(key)

    def hourly_usd(
        self, gpu: str, provider: str = "runpod", capacity: str = "on-demand"
    ) -> float | None:
        found = self.price(gpu, provider, capacity)
        return None if found is None else found.hourly_usd

    def prices(self) -> tuple[Price, ...]:
        return tuple(self._prices.values())

    def with_overrides(
        self, provider: str, gpu_hourly_usd: Mapping[str, float], taken: date | None = None
    ) -> "PriceCatalog":
        """A catalog where the given GPUs cost what the fleet file says on `provider`.

        Keys are GPU names (on-demand) or `GPU/capacity`; `taken` defaults to the list date.
        """
        table: dict[PriceKey, Price] = dict(self._prices)
        for key, usd in gpu_hourly_usd.items():
            price = _override(key, canonical_provider(provider), usd, taken or LIST_DATE)
            table[(price.gpu, price.provider, price.capacity)] = price
        return PriceCatalog(table.values())


def _override(key: str, provider: str, usd: float, taken: date) -> Price:
    gpu_name, _, capacity_name = key.partition("/")
    if usd < 0:
        raise ValueError(f"price for {key!r} must be >= 0 $/hour, got {usd}")
    capacity = canonical_capacity(capacity_name or "on-demand")
    return Price(canonical_gpu(gpu_name), provider, capacity, float(usd), taken, "fleet")


def default_catalog() -> PriceCatalog:
    """The built-in list prices (2026-11); a new catalog on every call."""
    return PriceCatalog(_list_prices())


def _list_prices() -> Iterable[Price]:
    for provider, gpu, *cells in LIST_PRICES:
        for capacity, usd in zip(CAPACITIES, cells, strict=True):
            if usd is not None:
                yield Price(gpu, provider, canonical_capacity(capacity), usd, LIST_DATE)


def catalog_for(pricing: Pricing) -> PriceCatalog:
    """The catalog a fleet file describes: the list prices with its `pricing` overrides."""
    return default_catalog().with_overrides(pricing.provider, pricing.gpu_hourly_usd)
