"""API Gateway REST and HTTP APIs: requests, and the data they send out."""

from __future__ import annotations

from ownllm.cost.model import FREE, PER_REQUEST, UNPRICED, Item, price_text
from ownllm.cost.pricers.base import PricingContext, component, line_item, pricer
from ownllm.cost.usage import GB, Usage


def _data_transfer_item(ctx: PricingContext, lid: str, usage: Usage) -> Item:
    price, note = ctx.price("datatransfer.out.internet")
    gb = usage.requests_per_day * usage.response_bytes / GB
    return line_item(
        ctx,
        f"{lid}/DataTransferOut",
        "data transfer out (internet)",
        None,
        f"{usage.requests_per_day:,.0f} responses x {usage.response_bytes:,} B = {gb:.4g} GB "
        f"x {price_text(price.usd)}/GB" + note,
        PER_REQUEST,
        [price],
        components=[component("Data transfer out", gb, price)],
    )


@pricer("AWS::ApiGateway::RestApi")
def price_rest_api(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    price, note = ctx.price("apigateway.rest.requests")
    requests = [component("Requests", usage.requests_per_day / 1e6, price)]
    basis = f"{usage.requests_per_day:,.0f} requests x {price_text(price.usd)}/1M (REST API)" + note
    return [
        line_item(ctx, lid, res["Type"], None, basis, PER_REQUEST, [price], components=requests),
        _data_transfer_item(ctx, lid, usage),
    ]


@pricer("AWS::ApiGatewayV2::Api")
def price_http_api(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    protocol = ctx.literal((res.get("Properties") or {}).get("ProtocolType")) or "HTTP"
    if protocol != "HTTP":
        return [
            line_item(
                ctx,
                lid,
                res["Type"],
                None,
                f"{protocol} API: billed per message and connection-minute, not in the catalog",
                UNPRICED,
            )
        ]
    price, note = ctx.price("apigateway.http.requests")
    requests = [component("Requests", usage.requests_per_day / 1e6, price)]
    basis = (
        f"{usage.requests_per_day:,.0f} requests x {price_text(price.usd)}/1M "
        f"(HTTP API; each request under 512 KB counts once)" + note
    )
    return [
        line_item(ctx, lid, res["Type"], None, basis, PER_REQUEST, [price], components=requests),
        _data_transfer_item(ctx, lid, usage),
    ]


@pricer("AWS::ApiGateway::Stage")
def price_rest_stage(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    props = res.get("Properties") or {}
    if ctx.literal(props.get("CacheClusterEnabled")) is True:
        return [
            line_item(
                ctx,
                lid,
                res["Type"],
                None,
                f"stage cache ({props.get('CacheClusterSize', '0.5')} GB) is billed per hour; not in the catalog",
                UNPRICED,
            )
        ]
    return [line_item(ctx, lid, res["Type"], 0.0, "no charge: requests are billed on the API line", FREE)]
