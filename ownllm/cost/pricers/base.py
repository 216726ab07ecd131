"""What every pricer shares: the pricing context (graph + catalog), the registry, Unpriceable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ownllm.cost.basis import Basis, NoPrice, NoteKind, Notes, PriceNote
from ownllm.cost.catalog import Catalog, Price
from ownllm.cost.graph import StackGraph
from ownllm.cost.model import Component, Item
from ownllm.cost.usage import Usage


class Unpriceable(Exception):
    """Raised by a pricer that cannot price its resource; `basis` says why."""

    def __init__(self, basis: Basis):
        super().__init__(basis)
        self.basis = basis


@dataclass(kw_only=True)
class PricingContext(StackGraph):
    """A stack's graph plus the catalog it is priced from, in the stack's region."""

    catalog: Catalog
    fallbacks: set[str] = field(default_factory=set)  # catalog items priced at another region's rate

    def price(self, item: str) -> tuple[Price, PriceNote | None]:
        """The catalog price and a note when it is not the stack region's own figure."""
        p = self.catalog.get(item, self.region)
        if p is None:
            raise Unpriceable(NoPrice(item))
        if p.region != self.region:
            self.fallbacks.add(item)
            return p, PriceNote(NoteKind.OTHER_REGION, p.region, self.region)
        if p.is_estimate:
            return p, PriceNote(NoteKind.ESTIMATED)
        return p, None


def first_note(*notes: PriceNote | None) -> Notes:
    """A line priced from several rows carries the first of their notes."""
    return next(((n,) for n in notes if n is not None), ())


def component(
    name: str,
    quantity_per_day: float,
    price: Price,
    *,
    min_quantity: float | None = None,
    max_quantity: float | None = None,
) -> Component:
    """`quantity_per_day` in the catalog row's own unit."""
    return Component(name, price.unit, quantity_per_day, price.usd, price.item, min_quantity, max_quantity)


Pricer = Callable[[PricingContext, str, dict[str, Any], Usage], list[Item]]
PRICERS: dict[str, Pricer] = {}


def pricer(*types: str) -> Callable[[Pricer], Pricer]:
    def register(fn: Pricer) -> Pricer:
        for t in types:
            PRICERS[t] = fn
        return fn

    return register


def line_item(
    ctx: PricingContext,
    logical_id: str,
    rtype: str,
    daily: float | None,
    basis: Basis,
    category: str,
    prices: Sequence[Price] = (),
    *,
    min_daily_usd: float | None = None,
    max_daily_usd: float | None = None,
    components: Sequence[Component] = (),
) -> Item:
    """A line of the estimate; with components and no `daily`, its figures are their sum."""
    return Item(
        ctx.stack.name,
        logical_id,
        rtype,
        daily,
        basis,
        category,
        sources=sorted({f"{p.item} ({p.region}): {p.source}, {p.date}" for p in prices}),
        uses_estimated_price=any(p.is_estimate or p.region != ctx.region for p in prices),
        min_daily_usd=min_daily_usd,
        max_daily_usd=max_daily_usd,
        components=list(components),
    )
