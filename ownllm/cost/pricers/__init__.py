"""One small pricer per resource family, registered by CloudFormation type.

A pricer turns one resource into `Item`s under the assumed usage. Types AWS does not charge
for are listed in `free.FREE_TYPES` with the reason; types nobody registered are reported as
unpriced, never as $0.
"""

from __future__ import annotations

from ownllm.cost.basis import NoCharge, NoPricer, Unpriced, UnpricedReason
from ownllm.cost.graph import is_custom
from ownllm.cost.model import FREE, UNPRICED, Item
from ownllm.cost.pricers import apigateway, cloudwatch, functions, logs, sagemaker  # noqa: F401 - registers pricers
from ownllm.cost.pricers.base import PRICERS, PricingContext, Unpriceable, line_item
from ownllm.cost.pricers.free import FREE_TYPES, SKIPPED_TYPES, USAGE_UNKNOWN
from ownllm.cost.pricers.logs import implicit_log_items
from ownllm.cost.pricers.sagemaker import variant_instance_hours
from ownllm.cost.usage import Usage

__all__ = ["PRICERS", "PricingContext", "implicit_log_items", "price_resource", "variant_instance_hours"]


def price_resource(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    rtype = res.get("Type", "")
    if rtype in SKIPPED_TYPES:
        return []
    fn = PRICERS.get(rtype)
    if fn is not None:
        try:
            return fn(ctx, lid, res, usage)
        except Unpriceable as exc:
            return [line_item(ctx, lid, rtype, None, exc.basis, UNPRICED)]
    if rtype in FREE_TYPES:
        return [line_item(ctx, lid, rtype, 0.0, NoCharge(FREE_TYPES[rtype]), FREE)]
    if rtype in USAGE_UNKNOWN:
        return [line_item(ctx, lid, rtype, None, Unpriced(USAGE_UNKNOWN[rtype]), UNPRICED)]
    if is_custom(rtype):
        return [line_item(ctx, lid, rtype, None, Unpriced(UnpricedReason.CUSTOM_RESOURCE), UNPRICED)]
    return [line_item(ctx, lid, rtype, None, NoPricer(rtype), UNPRICED)]
