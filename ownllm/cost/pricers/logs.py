"""CloudWatch Logs: ingestion and storage of what the request path writes."""

from __future__ import annotations

from ownllm.cost.basis import (
    FilterMetrics,
    ImplicitGroup,
    LogSource,
    LogVolume,
    LogWriter,
    NoCharge,
    NoChargeReason,
)
from ownllm.cost.model import FIXED, FREE, PER_REQUEST, Item, per_month_to_daily
from ownllm.cost.pricers.base import PricingContext, component, first_note, line_item, pricer
from ownllm.cost.pricers.functions import lambda_invocations
from ownllm.cost.usage import GB, Usage

NEVER_EXPIRE_STORAGE_DAYS = 365


def _log_item(
    ctx: PricingContext,
    lid: str,
    rtype: str,
    writers: list[LogWriter],
    retention_days: float | None,
    implicit: ImplicitGroup | None = None,
) -> Item:
    bytes_per_day = sum(w.per_day * w.bytes_each for w in writers)
    ingest, n1 = ctx.price("logs.ingestion")
    storage, n2 = ctx.price("logs.storage")
    gb = bytes_per_day / GB
    kept = retention_days if retention_days else NEVER_EXPIRE_STORAGE_DAYS
    stored_gb = gb * kept
    parts = [component("Ingestion", gb, ingest), component("Storage", per_month_to_daily(stored_gb), storage)]
    basis = LogVolume(
        tuple(writers),
        gb,
        ingest.usd,
        stored_gb,
        storage.usd,
        retention_days,
        kept,
        implicit,
        first_note(n1, n2),
    )
    return line_item(ctx, lid, rtype, None, basis, PER_REQUEST, [ingest, storage], components=parts)


def _lambda_log_writer(ctx: PricingContext, fid: str, usage: Usage) -> LogWriter | None:
    calls = lambda_invocations(ctx, fid, usage)
    if calls is None or fid in ctx.deploy_lambdas and fid not in ctx.request_lambdas:
        return None
    return LogWriter(LogSource.FUNCTION, calls[0], usage.lambda_log_bytes_per_request, fid)


@pricer("AWS::Logs::LogGroup")
def price_log_group(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    writers: list[LogWriter] = []
    for fid, gid in ctx.lambda_log_group.items():
        if gid == lid:
            w = _lambda_log_writer(ctx, fid, usage)
            if w:
                writers.append(w)
    for eid, gid in ctx.endpoint_log_group.items():
        if gid == lid:
            writers.append(_endpoint_log_writer(eid, usage))
    if lid in ctx.access_log_groups:
        writers.append(LogWriter(LogSource.ACCESS_LOG, usage.requests_per_day, usage.access_log_bytes_per_request))
    if not writers:
        return [line_item(ctx, lid, res["Type"], 0.0, NoCharge(NoChargeReason.LOG_GROUP_WITHOUT_WRITER), FREE)]
    retention = ctx.number(
        (res.get("Properties") or {}).get("RetentionInDays"), None, lid=lid, prop="RetentionInDays", minimum=1
    )
    return [_log_item(ctx, lid, res["Type"], writers, retention)]


def _endpoint_log_writer(eid: str, usage: Usage) -> LogWriter:
    return LogWriter(LogSource.ENDPOINT, usage.requests_per_day, usage.endpoint_log_bytes_per_request, eid)


def implicit_log_items(ctx: PricingContext, usage: Usage) -> list[Item]:
    """Log groups the services create on first write, when the template has none for them:
    /aws/lambda/<function> and /aws/sagemaker/Endpoints/<endpoint>."""
    items = []
    for eid, plans in sorted(ctx.endpoint_plans.items()):
        if eid in ctx.endpoint_log_group or not any(p.instance_type and not p.problem for p in plans):
            continue
        items.append(
            _log_item(
                ctx,
                f"{eid}/LogGroup",
                "AWS::Logs::LogGroup (implicit)",
                [_endpoint_log_writer(eid, usage)],
                None,
                ImplicitGroup.SAGEMAKER,
            )
        )
    for fid in sorted(ctx.of_type("AWS::Lambda::Function")):
        if fid in ctx.lambda_log_group:
            continue
        w = _lambda_log_writer(ctx, fid, usage)
        if w:
            items.append(
                _log_item(
                    ctx,
                    f"{fid}/LogGroup",
                    "AWS::Logs::LogGroup (implicit)",
                    [w],
                    None,
                    ImplicitGroup.LAMBDA,
                )
            )
    return items


@pricer("AWS::Logs::MetricFilter")
def price_metric_filter(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    n = len((res.get("Properties") or {}).get("MetricTransformations") or []) or 1
    price, note = ctx.price("cloudwatch.custom-metric")
    return [
        line_item(
            ctx,
            lid,
            res["Type"],
            None,
            FilterMetrics(n, price.usd, first_note(note)),
            FIXED,
            [price],
            components=[component("Metrics", per_month_to_daily(n), price)],
        )
    ]
