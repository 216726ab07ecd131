"""`ownllm prices refresh`: rebuild the catalog's rows from the AWS Price List API.

Queries boto3's `pricing` client (served from us-east-1) with TERM_MATCH filters:
SageMaker real-time hosting per instance type and region, Lambda duration and requests,
API Gateway REST and HTTP requests. Rows the API does not give back (a type not sold in a
region, and the CloudWatch, transfer and API-price rows) keep their current figure and
source, so a refresh never loses a price.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any

from ownllm.cost.catalog import Catalog, Price, hosting_item

PRICING_REGION = "us-east-1"
DEFAULT_REGIONS = ("us-east-1", "us-west-2", "eu-west-1")


def term(field: str, value: str) -> dict[str, str]:
    return {"Type": "TERM_MATCH", "Field": field, "Value": value}


@dataclass(frozen=True)
class Query:
    item: str
    region: str
    service_code: str
    filters: tuple[tuple[str, str], ...]
    pick: Callable[[dict[str, Any]], bool]  # which product of the answer
    unit: str
    scale: float = 1.0  # catalog unit / API unit, e.g. 1e6 for "per 1M requests"

    def request(self) -> dict[str, Any]:
        return {
            "ServiceCode": self.service_code,
            "Filters": [term(f, v) for f, v in self.filters],
            "FormatVersion": "aws_v1",
        }


def _usagetype(product: dict[str, Any]) -> str:
    return ((product.get("product") or {}).get("attributes") or {}).get("usagetype", "")


def _is_hosting(instance_type: str, product: dict[str, Any]) -> bool:
    usagetype = _usagetype(product)
    return usagetype.split(":")[0].endswith("Host") and usagetype.endswith(instance_type)


def queries_for(region: str, instance_types: Iterable[str]) -> list[Query]:
    out = []
    for itype in instance_types:
        out.append(
            Query(
                hosting_item(itype),
                region,
                "AmazonSageMaker",
                (
                    ("regionCode", region),
                    ("instanceName", itype),
                    ("productFamily", "ML Instance"),
                    ("component", "Hosting"),
                ),
                # 'USE1-Host:ml.g5.2xlarge'; asynchronous inference is 'USE1-AsyncInf:...'
                partial(_is_hosting, itype),
                "hour",
            )
        )
    for arch, suffix in (("x86_64", ""), ("arm64", "-ARM")):
        out.append(
            Query(
                f"lambda.duration:{arch}",
                region,
                "AWSLambda",
                (("regionCode", region), ("productFamily", "Serverless"), ("group", f"AWS-Lambda-Duration{suffix}")),
                lambda p: True,
                "GB-second",
            )
        )
    out.append(
        Query(
            "lambda.requests",
            region,
            "AWSLambda",
            (("regionCode", region), ("productFamily", "Serverless"), ("group", "AWS-Lambda-Requests")),
            lambda p: True,
            "1M requests",
            1e6,
        )
    )
    out.append(
        Query(
            "apigateway.rest.requests",
            region,
            "AmazonApiGateway",
            (("regionCode", region), ("productFamily", "API Calls")),
            lambda p: _usagetype(p).endswith("ApiGatewayRequest"),
            "1M requests",
            1e6,
        )
    )
    out.append(
        Query(
            "apigateway.http.requests",
            region,
            "AmazonApiGateway",
            (("regionCode", region), ("productFamily", "API Calls")),
            lambda p: _usagetype(p).endswith("ApiGatewayHttpRequest"),
            "1M requests",
            1e6,
        )
    )
    return out


def first_tier_usd(product: dict[str, Any]) -> tuple[float, str] | None:
    """The on-demand price of the first tier (beginRange 0) and its sku, from one PriceList entry."""
    on_demand = (product.get("terms") or {}).get("OnDemand") or {}
    for offer in on_demand.values():
        dims = sorted((offer.get("priceDimensions") or {}).values(), key=lambda d: float(d.get("beginRange", 0) or 0))
        for dim in dims:
            value = (dim.get("pricePerUnit") or {}).get("USD")
            if value is not None and float(value) > 0:
                return float(value), offer.get("sku") or (product.get("product") or {}).get("sku", "")
    return None


def fetch(client: Any, query: Query) -> tuple[float, str] | None:
    """Page through get_products for one query; the first matching product's first-tier price."""
    kwargs = query.request()
    while True:
        page = client.get_products(**kwargs)
        for raw in page.get("PriceList") or []:
            product = json.loads(raw) if isinstance(raw, str) else raw
            if query.pick(product):
                found = first_tier_usd(product)
                if found:
                    return found
        token = page.get("NextToken")
        if not token:
            return None
        kwargs["NextToken"] = token


def _fetch_or_explain(client: Any, query: Query) -> tuple[float, str] | None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fetch(client, query)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise PricingUnavailable(
            f"the Price List API refused {query.service_code} ({error.get('Code', '?')}: {error.get('Message', '')}); "
            "the credentials need pricing:GetProducts"
        ) from None
    except BotoCoreError as exc:
        raise PricingUnavailable(f"the Price List API cannot be reached ({exc})") from None


def refresh_catalog(
    client: Any,
    existing: Catalog,
    *,
    regions: Iterable[str] = DEFAULT_REGIONS,
    instance_types: Iterable[str] | None = None,
    today: str | None = None,
    show_progress: bool = True,
) -> tuple[list[Price], list[str]]:
    """New catalog rows and the list of queries that found nothing (their old rows are kept)."""
    if instance_types is None:
        from ownllm import gpus

        instance_types = list(gpus.gpu_table())
    today = today or date.today().isoformat()
    queries = [q for r in regions for q in queries_for(r, list(instance_types))]
    fetched: dict[tuple[str, str], Price] = {}
    missing: list[str] = []

    def run(advance: Callable[[], None]) -> None:
        for q in queries:
            found = _fetch_or_explain(client, q)
            if found:
                usd, sku = found
                fetched[(q.region, q.item)] = Price(
                    q.region,
                    q.item,
                    round(usd * q.scale, 10),
                    q.unit,
                    f"AWS Price List API get_products {q.service_code} (sku {sku})",
                    today,
                )
            else:
                missing.append(f"{q.region} {q.item}")
            advance()

    if show_progress:
        from rich.progress import Progress

        with Progress(transient=False) as progress:
            task = progress.add_task("Price List API", total=len(queries))
            run(lambda: progress.advance(task))
    else:
        run(lambda: None)

    rows = dict(fetched)
    for p in existing.prices:
        rows.setdefault((p.region, p.item), p)
    return list(rows.values()), missing


class PricingUnavailable(Exception):
    """The Price List API cannot be reached; the message says what is needed, in one line."""


def pricing_client() -> Any:
    """A Price List API client, or PricingUnavailable naming what is missing."""
    try:
        import boto3  # only this command needs boto3; the estimate path never imports it
    except ImportError:
        raise PricingUnavailable("needs boto3: pip install boto3 (or pip install -e '.[dev]')") from None
    session = boto3.Session()
    if session.get_credentials() is None:
        raise PricingUnavailable(
            "needs AWS credentials allowed to call pricing:GetProducts (set AWS_PROFILE, or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY); `ownllm prices show` lists the bundled catalog offline"
        )
    return session.client("pricing", region_name=PRICING_REGION)
