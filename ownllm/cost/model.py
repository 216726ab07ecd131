"""What an estimate is: lines per resource, totals, assumptions; and its JSON form."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from ownllm.cost.basis import Basis, Recorded, from_facts, to_facts
from ownllm.cost.wording import basis_text
from ownllm.cost.wording import price_text as price_text  # re-exported: app.py and the batch CLI import it here
from ownllm.cost.wording import usd as usd  # re-exported, as price_text

HOURS_PER_MONTH = 730  # AWS's billing month
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
SCHEMA = "ownllm.cost-estimate/1"

# Item categories
INSTANCES = "instances"  # billed per instance-hour
PER_REQUEST = "per-request"  # scales with requests/day
FIXED = "fixed"  # a monthly fee per resource
FREE = "free"  # explicitly no charge
UNPRICED = "unpriced"  # cannot be priced: never counted as $0


def monthly(daily: float) -> float:
    return daily * DAYS_PER_MONTH


def per_month_to_daily(usd_per_month: float) -> float:
    return usd_per_month / DAYS_PER_MONTH


@dataclass(frozen=True)
class Component:
    """One priced quantity of a resource, as the bill itemises it: quantity x unit price.

    Units are the price's own ("hour", "GB-second", "1M requests", "GB", "GB-month",
    "metric-month", "month"); a monthly unit's daily quantity is the month's share of a day."""

    name: str  # "Requests", "Duration", "Instance usage", "Ingestion", "Storage", ...
    unit: str
    quantity_per_day: float
    unit_usd: float
    price_item: str = ""  # the catalog row it was priced from
    min_quantity_per_day: float | None = None
    max_quantity_per_day: float | None = None

    @property
    def daily_usd(self) -> float:
        return self.quantity_per_day * self.unit_usd

    @property
    def min_daily_usd(self) -> float:
        q = self.quantity_per_day if self.min_quantity_per_day is None else self.min_quantity_per_day
        return q * self.unit_usd

    @property
    def max_daily_usd(self) -> float:
        q = self.quantity_per_day if self.max_quantity_per_day is None else self.max_quantity_per_day
        return q * self.unit_usd

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["daily_usd"] = round(self.daily_usd, 8)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Component:
        return cls(
            name=str(d["name"]),
            unit=str(d["unit"]),
            quantity_per_day=float(d["quantity_per_day"]),
            unit_usd=float(d["unit_usd"]),
            price_item=str(d.get("price_item", "")),
            min_quantity_per_day=d.get("min_quantity_per_day"),
            max_quantity_per_day=d.get("max_quantity_per_day"),
        )


@dataclass
class Item:
    stack: str
    logical_id: str
    resource_type: str
    daily_usd: float | None
    basis: Basis  # the facts; wording.basis_text makes the sentence
    category: str
    min_daily_usd: float | None = None
    max_daily_usd: float | None = None
    sources: list[str] = field(default_factory=list)
    uses_estimated_price: bool = False
    components: list[Component] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.daily_usd is None and self.components:
            self.daily_usd = sum(c.daily_usd for c in self.components)
            self.min_daily_usd = sum(c.min_daily_usd for c in self.components)
            self.max_daily_usd = sum(c.max_daily_usd for c in self.components)
        if self.daily_usd is not None:
            if self.min_daily_usd is None:
                self.min_daily_usd = self.daily_usd
            if self.max_daily_usd is None:
                self.max_daily_usd = self.daily_usd

    @property
    def priced(self) -> bool:
        return self.daily_usd is not None

    @property
    def key(self) -> tuple[str, str]:
        return (self.stack, self.logical_id)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["basis"] = basis_text(self.basis)
        d["basis_facts"] = to_facts(self.basis)
        d["components"] = [c.to_dict() for c in self.components]
        d["priced"] = self.priced
        d["monthly_usd"] = None if self.daily_usd is None else round(monthly(self.daily_usd), 4)
        for k in ("daily_usd", "min_daily_usd", "max_daily_usd"):
            if d[k] is not None:
                d[k] = round(d[k], 6)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Item:
        return cls(
            stack=d["stack"],
            logical_id=d["logical_id"],
            resource_type=d["resource_type"],
            daily_usd=d.get("daily_usd"),
            # Files written before bases were kept as facts have only the sentence.
            basis=from_facts(d["basis_facts"]) if d.get("basis_facts") else Recorded(str(d.get("basis", ""))),
            category=d.get("category", UNPRICED if d.get("daily_usd") is None else FIXED),
            min_daily_usd=d.get("min_daily_usd"),
            max_daily_usd=d.get("max_daily_usd"),
            sources=list(d.get("sources") or []),
            uses_estimated_price=bool(d.get("uses_estimated_price")),
            components=[Component.from_dict(c) for c in d.get("components") or []],
        )


@dataclass
class Estimate:
    items: list[Item]
    region: str
    region_source: str
    catalog_date: str
    assumptions: dict[str, Any]
    assumption_lines: list[str] = field(default_factory=list)
    stacks: list[dict[str, Any]] = field(default_factory=list)
    breakeven: dict[str, Any] = field(default_factory=dict)
    capacity: list[dict[str, Any]] = field(default_factory=list)
    chart: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    budget: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def daily_usd(self) -> float:
        return sum(i.daily_usd for i in self.items if i.daily_usd is not None)

    @property
    def monthly_usd(self) -> float:
        return monthly(self.daily_usd)

    @property
    def min_daily_usd(self) -> float:
        return sum(i.min_daily_usd for i in self.items if i.min_daily_usd is not None)

    @property
    def max_daily_usd(self) -> float:
        return sum(i.max_daily_usd for i in self.items if i.max_daily_usd is not None)

    @property
    def unpriced(self) -> list[Item]:
        return [i for i in self.items if not i.priced]

    @property
    def complete(self) -> bool:
        """False when a resource that could carry cost has no price: the totals leave it out."""
        return not self.unpriced

    def top(self, n: int = 3) -> list[Item]:
        return sorted((i for i in self.items if i.priced and i.daily_usd), key=lambda i: -(i.daily_usd or 0.0))[:n]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "currency": "USD",
            "complete": self.complete,
            "daily_usd": round(self.daily_usd, 4),
            "monthly_usd": round(self.monthly_usd, 2),
            "daily_usd_range": {"min": round(self.min_daily_usd, 4), "max": round(self.max_daily_usd, 4)},
            "region": self.region,
            "region_source": self.region_source,
            "catalog_date": self.catalog_date,
            "assumptions": self.assumptions,
            "assumption_lines": self.assumption_lines,
            "stacks": self.stacks,
            "items": [i.to_dict() for i in self.items],
            "unpriced": [
                {
                    "stack": i.stack,
                    "logical_id": i.logical_id,
                    "resource_type": i.resource_type,
                    "reason": basis_text(i.basis),
                }
                for i in self.unpriced
            ],
            "breakeven": self.breakeven,
            "capacity": self.capacity,
            "chart": self.chart,
            "budget": self.budget,
            "warnings": self.warnings,
            "source": self.source,
        }

    def write_json(self, path: str | os.PathLike) -> None:
        with open(path, "w") as fh:
            json.dump(self.to_dict(), fh, indent=2)
            fh.write("\n")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Estimate:
        if not isinstance(d, dict) or "items" not in d or "daily_usd" not in d:
            raise ValueError("not an ownllm cost estimate (no 'items' / 'daily_usd')")
        return cls(
            items=[Item.from_dict(x) for x in d["items"]],
            region=d.get("region", ""),
            region_source=d.get("region_source", ""),
            catalog_date=d.get("catalog_date", ""),
            assumptions=d.get("assumptions") or {},
            assumption_lines=list(d.get("assumption_lines") or []),
            stacks=list(d.get("stacks") or []),
            breakeven=d.get("breakeven") or {},
            capacity=list(d.get("capacity") or []),
            chart=d.get("chart") or {},
            warnings=list(d.get("warnings") or []),
            budget=d.get("budget") or {},
            source=d.get("source", ""),
        )

    @classmethod
    def read_json(cls, path: str | os.PathLike) -> Estimate:
        with open(path) as fh:
            return cls.from_dict(json.load(fh))
