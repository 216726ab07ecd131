"""API Gateway REST and HTTP APIs: requests, and the data they send out."""

from __future__ import annotations

from ownllm.cost.basis import (
    ApiKind,
    ApiRequests,
    DataTransferOut,
    MessageApi,
    NoCharge,
    NoChargeReason,
    StageCache,
)
from ownllm.cost.model import FREE, PER_REQUEST, UNPRICED, Item
from ownllm.cost.pricers.base import PricingContext, component, first_note, line_item, pricer
from ownllm.cost.usage import GB, Usage

REQUEST_PRICES = {ApiKind.REST: "apigateway.rest.requests", ApiKind.HTTP: "apigateway.http.requests"}


def _data_transfer_item(ctx: PricingContext, lid: str, usage: Usage) -> Item:
    price, note = ctx.price("datatransfer.out.internet")
    gb = usage.requests_per_day * usage.response_bytes / GB
    return line_item(
        ctx,
        f"{lid}/DataTransferOut",
        "data transfer out (internet)",
        None,
        DataTransferOut(usage.requests_per_day, usage.response_bytes, gb, price.usd, first_note(note)),
        PER_REQUEST,
        [price],
        components=[component("Data transfer out", gb, price)],
    )


def _api_items(ctx: PricingContext, lid: str, rtype: str, api: ApiKind, usage: Usage) -> list[Item]:
    price, note = ctx.price(REQUEST_PRICES[api])
    requests = [component("Requests", usage.requests_per_day / 1e6, price)]
    basis = ApiRequests(api, usage.requests_per_day, price.usd, first_note(note))
    return [
        line_item(ctx, lid, rtype, None, basis, PER_REQUEST, [price], components=requests),
        _data_transfer_item(ctx, lid, usage),
    ]


@pricer("AWS::ApiGateway::RestApi")
def price_rest_api(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    return _api_items(ctx, lid, res["Type"], ApiKind.REST, usage)


@pricer("AWS::ApiGatewayV2::Api")
def price_http_api(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    protocol = ctx.literal((res.get("Properties") or {}).get("ProtocolType")) or "HTTP"
    if protocol != "HTTP":
        return [line_item(ctx, lid, res["Type"], None, MessageApi(str(protocol)), UNPRICED)]
    return _api_items(ctx, lid, res["Type"], ApiKind.HTTP, usage)


@pricer("AWS::ApiGateway::Stage")
def price_rest_stage(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    props = res.get("Properties") or {}
    if ctx.literal(props.get("CacheClusterEnabled")) is True:
        size = StageCache(str(props.get("CacheClusterSize", "0.5")))
        return [line_item(ctx, lid, res["Type"], None, size, UNPRICED)]
    return [line_item(ctx, lid, res["Type"], 0.0, NoCharge(NoChargeReason.BILLED_ON_API_LINE), FREE)]
