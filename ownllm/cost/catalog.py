"""The bundled price catalog (ownllm/data/prices.csv): one published unit price per row.

Columns: region, item, usd, unit, source, date. `source` names where the figure comes
from; a figure that is derived or unconfirmed says "estimate" there, and every estimate
line that uses it says so too. `ownllm prices refresh` rebuilds the rows it can from the
AWS Price List API.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CATALOG_PATH = Path(__file__).resolve().parent.parent / "data" / "prices.csv"
FIELDS = ("region", "item", "usd", "unit", "source", "date")
FALLBACK_REGION = "us-east-1"


@dataclass(frozen=True)
class Price:
    region: str
    item: str
    usd: float
    unit: str
    source: str
    date: str

    @property
    def is_estimate(self) -> bool:
        return self.source.lower().startswith("estimate") or "estimate:" in self.source.lower()


class Catalog:
    def __init__(self, prices: list[Price], path: Path | None = None):
        self.path = path
        self._by_key = {(p.region, p.item): p for p in prices}
        self.prices = prices

    @property
    def date(self) -> str:
        """The newest date of any row: when the catalog was last compiled or refreshed."""
        return max((p.date for p in self.prices), default="unknown")

    @property
    def regions(self) -> list[str]:
        return sorted({p.region for p in self.prices})

    def get(self, item: str, region: str) -> Price | None:
        """The price in `region`, else the us-east-1 price (the caller says so), else None."""
        return self._by_key.get((region, item)) or self._by_key.get((FALLBACK_REGION, item))

    def has(self, item: str, region: str) -> bool:
        return (region, item) in self._by_key


class CatalogError(ValueError):
    """A price catalog that cannot be priced with; the message names the file, the line and the value."""


def read_rows(path: str | os.PathLike) -> list[Price]:
    """Every price row; CatalogError for a row a total could not trust (one line, the first such row)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return _rows(path, csv.DictReader(fh))
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise CatalogError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except csv.Error as exc:
        raise CatalogError(f"{path}: not a CSV file ({exc})") from None


def _rows(path: str | os.PathLike, reader: csv.DictReader[str]) -> list[Price]:
    missing = set(FIELDS) - set(reader.fieldnames or ())
    if missing:
        raise CatalogError(f"{path}: price catalog lacks columns {', '.join(sorted(missing))}")
    prices: list[Price] = []
    seen: dict[tuple[str, str], int] = {}
    for r in reader:
        if not r.get("region") or r["region"].startswith("#"):
            continue
        where = f"{path} line {reader.line_num}"
        empty = [name for name in FIELDS if not r.get(name)]
        if empty:
            raise CatalogError(f"{where}: {', '.join(empty)} empty or missing; every row needs {', '.join(FIELDS)}")
        try:
            usd = float(r["usd"])
        except ValueError:
            usd = math.nan
        if not (math.isfinite(usd) and usd >= 0):  # a NaN or negative price made "$nan/day", "$-35.77/day"
            raise CatalogError(f"{where}: usd {r['usd']!r} is not a price (a finite number of dollars, at least 0)")
        key = (r["region"], r["item"])
        if key in seen:
            raise CatalogError(
                f"{where}: {r['item']} in {r['region']} is priced again (first on line {seen[key]}); "
                "give each region and item one row"
            )
        seen[key] = reader.line_num
        prices.append(Price(r["region"], r["item"], usd, r["unit"], r["source"], r["date"]))
    return prices


def write_rows(path: str | os.PathLike, prices: list[Price]) -> None:
    rows = sorted(prices, key=lambda p: (p.item, p.region))
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(FIELDS)
        for p in rows:
            writer.writerow([p.region, p.item, f"{p.usd:.10g}", p.unit, p.source, p.date])


@lru_cache(maxsize=8)
def _load(path: str) -> Catalog:
    return Catalog(read_rows(path), Path(path))


def load_catalog(path: str | os.PathLike | None = None) -> Catalog:
    """The catalog at `path`, or $OWNLLM_PRICES, or the bundled one (cached per path)."""
    chosen = path or os.environ.get("OWNLLM_PRICES") or CATALOG_PATH
    return _load(str(Path(chosen).resolve()))


def hosting_item(instance_type: str) -> str:
    return f"sagemaker.hosting:{instance_type}"
