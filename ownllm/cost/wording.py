"""The bill's words: each line's one-sentence basis, money and price figures, short numbers.

Pricers hand over facts (`ownllm.cost.basis`); the reports, the diff, the synth hook and the
JSON file all take a line's sentence from `basis_text`, so a line reads the same everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, assert_never

from ownllm.cost.basis import (
    AlarmMetrics,
    AlarmResolution,
    ApiKind,
    ApiRequests,
    Basis,
    CapacityKind,
    CapacityRule,
    ChosenAtDeploy,
    DataProcessed,
    DataTransferOut,
    EmittedMetrics,
    Fee,
    FilterMetrics,
    FunctionUsage,
    IgnoredAction,
    ImplicitGroup,
    InstanceHours,
    InvertedBounds,
    Invocation,
    LogSource,
    LogVolume,
    LogWriter,
    MessageApi,
    MonthlyFee,
    NestedStack,
    NoCharge,
    NoChargeReason,
    NoPrice,
    NoPricer,
    NoteKind,
    Notes,
    NotInCatalog,
    PriceNote,
    Recorded,
    ScaleToZero,
    Scaling,
    ScheduledInvocations,
    StageCache,
    TemplateWarning,
    Trigger,
    UnaveragedSchedule,
    UnknownSchedule,
    Unpriced,
    UnpricedReason,
    UnreadableVariant,
    VariantProblem,
    WeeklyBound,
)

if TYPE_CHECKING:
    from ownllm.cost.usage import ServingFigures, Usage

# ----- figures -------------------------------------------------------------------------------


def usd(value: float | None, places: int | None = None) -> str:
    """$1,234.56 for totals; small per-request figures keep their significant digits."""
    if value is None:
        return "unpriced"
    if places is None:
        places = 2 if abs(value) >= 0.995 or value == 0 else 4
    return f"${value:,.{places}f}"


def price_text(value: float) -> str:
    """A unit price as published, never in exponent form: $1.515, $3.50, $0.0000166667."""
    text = f"{value:.10f}".rstrip("0")
    whole, _, frac = text.partition(".")
    if len(frac) < 2:
        frac = frac.ljust(2, "0")
    return f"${whole}.{frac}"


def short_number(r: float) -> str:
    """1.5k, 2M: a chart's axis label."""
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if r >= div:
            v = r / div
            return f"{v:.0f}{suffix}" if v == int(v) else f"{v:.1f}{suffix}"
    return f"{r:.0f}"


# ----- notes ---------------------------------------------------------------------------------


def note_text(note: PriceNote) -> str:
    if note.kind is NoteKind.OTHER_REGION:
        return f" [{note.price_region} price: the catalog has none for {note.stack_region}]"
    if note.kind is NoteKind.ESTIMATED:
        return " [estimated price]"
    assert_never(note.kind)


def notes_text(notes: Notes) -> str:
    """Each distinct note once, in a stable order, after the sentence."""
    return "".join(sorted({note_text(n) for n in notes}))


# ----- fixed reasons -------------------------------------------------------------------------

_ON_ENDPOINT = "no charge: its instances are billed on the endpoint line"
NO_CHARGE: dict[NoChargeReason, str] = {
    NoChargeReason.PLAIN: "no charge",
    NoChargeReason.BILLED_ON_API_LINE: "no charge: requests are billed on the API line",
    NoChargeReason.BILLED_ON_FUNCTION_LINE: "no charge: requests are billed on the function line",
    NoChargeReason.AUTHORIZER: "no charge (a Lambda authorizer's function is billed on its own line)",
    NoChargeReason.MODEL_DEFINITION: "no charge: a model definition; instances are billed on the endpoint line",
    NoChargeReason.INFERENCE_COMPONENT: "no charge: billed through its endpoint's instances",
    NoChargeReason.SCALING: "no charge: its effect is in the endpoint line",
    NoChargeReason.SNS_TOPIC: "no charge for a topic; alarm notifications fall within SNS's free tier",
    NoChargeReason.BUDGET: "no charge for a budget (only action-enabled budgets beyond two are billed)",
    NoChargeReason.SUBSCRIPTION_FILTER: "no charge for the filter (its destination is billed on its own line)",
    NoChargeReason.EVENTS_RULE: "no charge for scheduled rules and AWS service events",
    NoChargeReason.PUBLIC_CERTIFICATE: "no charge for public certificates",
    NoChargeReason.CDK_HELPER: "no charge: a CDK deploy-time helper",
    NoChargeReason.CDK_BUCKET_DEPLOYMENT: (
        "no charge: a CDK deploy-time helper (the bucket is priced on its own line)"
    ),
    NoChargeReason.ENDPOINT_CONFIG_USED: _ON_ENDPOINT,
    NoChargeReason.ENDPOINT_CONFIG_UNUSED: "no charge: no endpoint in this stack uses it, so it runs nothing",
    NoChargeReason.DEPLOY_TIME_FUNCTION: "no daily charge: a custom-resource handler, invoked only while deploying",
    NoChargeReason.LOG_GROUP_WITHOUT_WRITER: (
        "no charge for the group; no per-request writer found in the templates (deploy-time logs not estimated)"
    ),
}
UNPRICED: dict[UnpricedReason, str] = {
    UnpricedReason.BUCKET_CONTENTS: "storage and requests depend on what is stored; not estimated",
    UnpricedReason.REPOSITORY_IMAGES: "storage depends on the images pushed; not estimated",
    UnpricedReason.QUEUE_MESSAGES: "billed per request; message volume unknown",
    UnpricedReason.TABLE_REQUESTS: "billed per request or provisioned capacity; not estimated",
    UnpricedReason.CUSTOM_RESOURCE: "custom resource: what it creates or calls is not in the template",
    UnpricedReason.NO_TRIGGER: (
        "no trigger found in the templates (API integration, permission for API Gateway, "
        "schedule or custom resource): invocations per day unknown"
    ),
    UnpricedReason.NESTED_TEMPLATE_MISSING: "nested stack whose template is not in cdk.out",
    UnpricedReason.NO_INSTANCE_TYPE: "no instance type",
}
_NOT_A_CHOICE = "is neither a literal nor a choice between literals (Fn::If, Fn::FindInMap)"
VARIANT_PROBLEMS: dict[VariantProblem, str] = {
    VariantProblem.CONFIG_MISSING: "its endpoint config is not in this template",
    VariantProblem.SERVERLESS: "serverless inference variant: billed per ms of compute, not in the catalog",
    VariantProblem.INSTANCE_TYPE_UNKNOWN: f"InstanceType {_NOT_A_CHOICE}",
    VariantProblem.COUNT_MISSING: "InitialInstanceCount is not set",
    VariantProblem.COUNT_UNKNOWN: f"InitialInstanceCount {_NOT_A_CHOICE}",
    VariantProblem.BOUND_UNKNOWN: _NOT_A_CHOICE,  # after "<target> <property> "
}
# What a flat monthly fee buys, and what it leaves out.
FEES: dict[Fee, tuple[str, str]] = {
    Fee.COMPOSITE_ALARM: ("1 composite alarm", ""),
    Fee.DASHBOARD: ("1 dashboard", " (the 3 free dashboards are not applied)"),
    Fee.KMS_KEY: ("1 key", " (requests not estimated)"),
    Fee.SECRET: ("1 secret", " (API calls not estimated)"),
}
ALARM_RESOLUTIONS: dict[AlarmResolution, str] = {
    AlarmResolution.STANDARD: "standard",
    AlarmResolution.HIGH: "high-resolution",
}
API_KINDS: dict[ApiKind, str] = {
    ApiKind.REST: "REST API",
    ApiKind.HTTP: "HTTP API; each request under 512 KB counts once",
}
IMPLICIT_GROUPS: dict[ImplicitGroup, str] = {
    ImplicitGroup.SAGEMAKER: "/aws/sagemaker/Endpoints group created by SageMaker, not in the template; ",
    ImplicitGroup.LAMBDA: "/aws/lambda group created by Lambda, not in the template; ",
}


# ----- the sentence --------------------------------------------------------------------------


def basis_text(basis: Basis) -> str:
    """A line's basis as one sentence: how its figure was reached, or why there is none."""
    match basis:
        case InstanceHours():
            return _instance_hours(basis)
        case ChosenAtDeploy():
            types = ", ".join(f"{c.instance_type} ({price_text(c.hourly_usd)}/h)" for c in basis.choices)
            return (
                f"chosen at deploy time: {types}; {basis.min_count}..{basis.max_count} instances ({capacity_text(basis.capacity)}); "
                f"range {usd(basis.low_usd)}..{usd(basis.high_usd)}/day, counted at the top of the range"
            ) + notes_text(basis.notes)
        case DataProcessed():
            return (
                f"{basis.requests:,.0f} requests x {basis.bytes_each:,} B "
                f"= {basis.gb:.4g} GB in+out x {price_text(basis.unit_usd)}/GB" + notes_text(basis.notes)
            )
        case DataTransferOut():
            return (
                f"{basis.responses:,.0f} responses x {basis.bytes_each:,} B = {basis.gb:.4g} GB "
                f"x {price_text(basis.unit_usd)}/GB" + notes_text(basis.notes)
            )
        case ApiRequests():
            return (
                f"{basis.requests:,.0f} requests x {price_text(basis.unit_usd)}/1M ({API_KINDS[basis.api]})"
                + notes_text(basis.notes)
            )
        case FunctionUsage():
            return _function_usage(basis)
        case EmittedMetrics():
            return (
                f"{basis.always} metric(s) emitted on every request x {price_text(basis.unit_usd)}/metric-month "
                f"(up to {basis.at_most} when every error class occurs)" + notes_text(basis.notes)
            )
        case FilterMetrics():
            return f"{basis.count} custom metric(s) x {price_text(basis.unit_usd)}/metric-month" + notes_text(
                basis.notes
            )
        case AlarmMetrics():
            return (
                f"{basis.count} metric(s) x {price_text(basis.unit_usd)}/alarm-metric-month "
                f"({ALARM_RESOLUTIONS[basis.resolution]}, {basis.period_s:g} s period)" + notes_text(basis.notes)
            )
        case MonthlyFee():
            what, remark = FEES[basis.fee]
            return f"{what} x {price_text(basis.unit_usd)}/month{remark}" + notes_text(basis.notes)
        case ScheduledInvocations():
            return (
                f"{basis.per_day:g} invocations/day ({basis.expression}) x {price_text(basis.unit_usd)}/1M "
                "(the 14M/month free tier is not applied)" + notes_text(basis.notes)
            )
        case LogVolume():
            return _log_volume(basis)
        case NoCharge():
            return NO_CHARGE[basis.reason]
        case NestedStack():
            return f"no charge: a nested stack; its resources are priced under {basis.stack}/{basis.logical_id}"
        case Unpriced():
            return UNPRICED[basis.reason]
        case NoPricer():
            return f"no pricer for {basis.resource_type}"
        case NoPrice():
            return f"no price for {basis.item} in the catalog"
        case NotInCatalog():
            choice = f" (an intrinsic chooses between {', '.join(basis.choices)})" if basis.choices else ""
            return f"{', '.join(basis.missing)} is not in the price catalog for {basis.region}{choice}"
        case UnknownSchedule():
            return f"schedule {basis.expression!r}: invocations per day unknown"
        case MessageApi():
            return f"{basis.protocol} API: billed per message and connection-minute, not in the catalog"
        case StageCache():
            return f"stage cache ({basis.size_gb} GB) is billed per hour; not in the catalog"
        case UnreadableVariant():
            text = VARIANT_PROBLEMS[basis.problem]
            return f"{basis.target_id} {basis.prop} {text}" if basis.problem is VariantProblem.BOUND_UNKNOWN else text
        case Recorded():
            return basis.text
        case _:
            assert_never(basis)


def _instance_hours(b: InstanceHours) -> str:
    rate = f"{b.instance_type} x {price_text(b.hourly_usd)}/h"
    if b.scaling is Scaling.FIXED:
        text = f"{b.initial_count} x {b.instance_type} x 24 h x {price_text(b.hourly_usd)}/h"
    elif b.scaling is Scaling.AUTOSCALING:
        extra = max(0, min(b.needed, b.max_count) - b.min_count)
        text = (
            f"expected {b.hours_per_day / 24:g} x {rate} x 24 h ({capacity_text(b.capacity)}: min {b.min_count} all day"
            + (
                f" + {extra} more for the assumed load ({b.needed} needed)"
                if extra
                else f"; the assumed load needs {b.needed}"
            )
            + f"); range {b.min_count}..{b.max_count} instances = {usd(b.low_usd)}..{usd(b.high_usd)}/day"
        )
    elif b.scaling is Scaling.SCHEDULED:
        text = (
            f"{rate} x {b.hours_per_day:.2f} instance-h/day, the weekly average of: {_weekly(b.weekly)} "
            f"({capacity_text(b.capacity)}; the assumed load needs {b.needed} while traffic arrives); "
            f"range {usd(b.low_usd)}..{usd(b.high_usd)}/day"
        )
    else:
        assert_never(b.scaling)
    if b.scale_to_zero is not None:
        text += _scale_to_zero(b.scale_to_zero)
    if b.over_capacity:
        text += f"; CAPACITY: the load needs {b.needed} instances, at most {b.max_count} can run"
    return text + notes_text(b.notes)


def capacity_text(rule: CapacityRule) -> str:
    """Where a variant's instance bounds come from, e.g. 'ScalableTarget T: autoscaling 1..2'."""
    if rule.kind is CapacityKind.FIXED:
        text = f"{rule.low} instance(s) all week"
    elif rule.kind is CapacityKind.ALTERNATIVES:
        text = f"{rule.low} or {rule.high} instance(s) all week, chosen at deploy time"
    elif rule.kind is CapacityKind.AUTOSCALING:
        text = f"autoscaling {rule.low}..{rule.high}"
    elif rule.kind is CapacityKind.SCHEDULED:
        text = "scheduled actions " + "; ".join(
            f"{a.schedule} -> {'=' if a.min_capacity is None else a.min_capacity}.."
            f"{'=' if a.max_capacity is None else a.max_capacity}"
            for a in rule.actions
        )
        zones = sorted({a.timezone for a in rule.actions if a.timezone})
        if zones:
            text += f" ({', '.join(zones)})"
    elif rule.kind is CapacityKind.MANAGED:
        text = f"managed instance scaling {rule.low}..{rule.high}"
    else:
        assert_never(rule.kind)
    return f"ScalableTarget {rule.target_id}: {text}" if rule.target_id else text


def _weekly(bounds: tuple[WeeklyBound, ...]) -> str:
    """e.g. '2 for 50 h/week, 1 for 118 h/week'."""
    return ", ".join(
        f"{w.low if w.low == w.high else f'{w.low}..{w.high}'} for {w.hours_per_week:g} h/week" for w in bounds
    )


def _scale_to_zero(wake: ScaleToZero) -> str:
    return (
        f"; scales to zero: about {wake.cold_starts_per_day:.2g} cold starts/day, each a "
        f"~{wake.wait_s_per_cold_start / 60:.1f} min wait ({wake.scale_in_idle_min:g} min idle "
        f"to scale in, {wake.release_min:g} min to release)"
    )


def _function_usage(b: FunctionUsage) -> str:
    gb = b.memory_mb / 1024
    return (
        f"{b.invocations:,.0f} invocations x {b.seconds:.2f} s x {gb:g} GB ({b.memory_mb:g} MB, {b.architecture}) "
        f"x {price_text(b.duration_usd)}/GB-s + {b.invocations:,.0f} x {price_text(b.request_usd)}/1M requests"
        f" ({invocation_text(b.invocation)})" + notes_text(b.notes)
    )


def invocation_text(i: Invocation) -> str:
    """Why a function runs, and for how long each run is taken to last."""
    if i.trigger is Trigger.REQUEST_PATH:
        capped = "" if i.capped_at_timeout_s is None else f"; capped at its {i.capped_at_timeout_s:g} s timeout"
        return "on the request path" + capped
    if i.trigger is Trigger.AUTHORIZER:
        return f"API authorizer, once per request; {(i.assumed_s or 0.0) * 1000:g} ms per run assumed"
    if i.trigger is Trigger.SCHEDULED:
        return f"scheduled; {i.assumed_s or 0.0:g} s per run assumed"
    assert_never(i.trigger)


def _log_volume(b: LogVolume) -> str:
    who = " + ".join(log_writer_text(w) for w in b.writers)
    retention = (
        f"{b.kept_days:g} days retention" if b.retention_days else f"never expires: priced at {b.kept_days:g} days kept"
    )
    prefix = "" if b.implicit is None else IMPLICIT_GROUPS[b.implicit]
    return (
        f"{prefix}{who}: {b.gb_per_day:.4g} GB/day x {price_text(b.ingestion_usd)}/GB ingestion + "
        f"{b.stored_gb:.4g} GB stored ({retention}, uncompressed) x {price_text(b.storage_usd)}/GB-month"
        + notes_text(b.notes)
    )


def log_writer_text(w: LogWriter) -> str:
    if w.source is LogSource.FUNCTION:
        return f"{w.per_day:,.0f} x {w.bytes_each:,} B from {w.writer_id}"
    if w.source is LogSource.ENDPOINT:
        return f"{w.per_day:,.0f} x {w.bytes_each:,} B from {w.writer_id}'s container"
    if w.source is LogSource.ACCESS_LOG:
        return f"{w.per_day:,.0f} x {w.bytes_each:,} B of API access log"
    assert_never(w.source)


# ----- the assumptions ------------------------------------------------------------------------

ALL_WEEK = "24 h a day, 7 days a week"


def active_window(usage: Usage) -> str:
    """When requests arrive: all week, or the settings' active hours."""
    s = usage.schedule
    if s is None:
        return ALL_WEEK
    return (
        f"evenly over {s.start_hour:02d}:00-{s.end_hour:02d}:00 "
        f"{','.join(s.days)} ({s.timezone}), {usage.active_hours_per_week:g} h/week (settings.active_hours)"
    )


def serving_lines(serving: ServingFigures | None) -> list[str]:
    """How the serving figures the stacks deploy with were reached."""
    if serving is None:
        return []
    target, latency, max_tokens = serving.target_concurrency, serving.latency, serving.max_tokens
    return [
        f"autoscaling target {target.value:g} concurrent requests per instance ({target.source}: {target.basis})",
        f"latency alarms at {serving.latency_alarm_ms:,} ms ({latency.source}: {latency.basis})",
        f"max_tokens at most {serving.max_output_tokens:,} per request "
        f"(the least of max_total_tokens - max_input_tokens and, from the {max_tokens.source}, "
        f"what finishes within the buffered-answer budget (lambda_timeout_s): {max_tokens.basis})",
    ]


def assumption_lines(u: Usage) -> list[str]:
    """The assumptions, one sentence each, for every report."""
    from ownllm.cost.usage import BYTES_PER_TOKEN, ENVELOPE_BYTES  # here: the bill's words import light

    return [
        f"{u.requests_per_day:,.0f} requests/day, arriving {active_window(u)}",
        f"{u.avg_input_tokens:,} input + {u.avg_output_tokens:,} output tokens per request (average)",
        f"{u.generation_tokens_per_s:.4g} tokens/s per request ({_named(u.generation_tokens_per_s_source)}), so a "
        f"request takes {u.avg_output_tokens:,} / {u.generation_tokens_per_s:.4g} + "
        f"{u.lambda_overhead_s:g} s overhead = {u.lambda_duration_s:.2f} s in the Lambda",
        f"instance throughput {u.instance_tokens_per_s:.4g} output tokens/s ({_named(u.instance_tokens_per_s_source)})",
        f"log ingestion {u.lambda_log_bytes_per_request:,} B/request (Lambda) + "
        f"{u.access_log_bytes_per_request:,} B/request (API access log) + "
        f"{u.endpoint_log_bytes_per_request:,} B/request (model container)",
        f"{u.request_bytes:,} B in and {u.response_bytes:,} B out per request "
        f"({BYTES_PER_TOKEN} B/token + {ENVELOPE_BYTES} B envelope)",
        *serving_lines(u.serving),
        "on-demand prices, no free tier, no savings plan",
    ]


def _named(source: str) -> str:
    """A source for a report line: "model: ..." as is, a setting's name as calibrated."""
    from ownllm.capacity import CALIBRATED, MODEL

    return source if source.startswith(f"{MODEL}:") else f"{CALIBRATED}: {source} (ownllm bench --calibrate)"


# ----- owning against the API, warnings --------------------------------------------------------

PREQUANTIZED_NOTE = "a checkpoint quantized ahead of time (AWQ/GPTQ)"
ESTIMATED_PRICES_WARNING = "some lines use catalog figures marked 'estimate'; run `ownllm prices refresh` to confirm"


def warning_text(w: TemplateWarning) -> str:
    """What reading a template found that the estimate cannot price as written."""
    match w:
        case UnaveragedSchedule():
            return (
                f"{w.stack}/{w.function_id}: schedule {w.expression!r} cannot be averaged over a week; "
                "its invocations are unknown"
            )
        case InvertedBounds():
            return (
                f"{w.stack}/{w.target_id}: MinCapacity {w.low} is above MaxCapacity {w.high}, which Application Auto "
                f"Scaling refuses; priced as {w.low} instances"
            )
        case IgnoredAction():
            return f"{w.stack}/{w.target_id}: scheduled action ignored: {w.reason}"
        case _:
            assert_never(w)


def _endpoint(row: dict[str, Any]) -> str:
    return f"{row['stack']}/{row['endpoint']} ({row['instance_type']})"


def over_capacity_warning(row: dict[str, Any]) -> str:
    """For a capacity row whose variant cannot run the instances the assumed load needs."""
    return (
        f"{_endpoint(row)}: the assumed load needs {row['instances_needed']} instances but at most "
        f"{row['max_instances']} can run; raise max_instances or instance_tokens_per_s if measured"
    )


def fit_warning(row: dict[str, Any]) -> str:
    """For a capacity row whose model does not fit its instance; the problem is the capacity module's message."""
    return f"{_endpoint(row)}: {row['fit_problem']}"


def fallback_warning(stack: str, items: list[str], price_region: str, stack_region: str) -> str:
    return f"{stack}: {', '.join(items)} priced at {price_region} rates (the catalog has none for {stack_region})"


def breakeven_summary(info: dict[str, Any], requests_per_day: float) -> str:
    """Owning against the per-token API, in a few sentences, from the estimate's `breakeven` facts."""
    api = info["api"]
    r = info["breakeven_requests_per_day"]
    head = (
        f"At {requests_per_day:,.0f} requests/day owning costs ${info['own_daily_usd']:,.2f}/day; "
        f"{api['label']} (${api['input_usd_per_m']:g} in / ${api['output_usd_per_m']:g} out per 1M tokens) "
        f"would cost ${info['api_daily_usd']:,.2f}/day."
    )
    if "never_breaks_even" not in info:  # no instance-backed endpoint to size
        if r is None:
            return head + " Owning never breaks even: per request it costs at least as much as the API."
        return head + f" Owning breaks even at about {r:,.0f} requests/day."
    own_1k, api_1k = info["own_usd_per_1k_requests_at_full_load"], info["api_usd_per_1k_requests"]
    servable = info["max_requests_per_day_at_max_capacity"]
    cap = info["max_instances"]
    if not info["assumed_load_within_capacity"]:
        head = head.replace("owning costs", f"owning as configured (at most {cap} instances) costs", 1)
    parts = [head]
    if info["never_breaks_even"]:
        parts.append(
            f"Owning never breaks even with {info['serving']}: a fully used instance costs ${own_1k:.4g} per "
            f"1,000 requests, the API ${api_1k:.4g}."
        )
        better = [m for m in info["remedies"] if m["breaks_even"]]
        if better:
            parts.append(
                "What would change that: "
                + "; ".join(
                    f"{remedy_text(m)} (${m['own_usd_per_1k_requests']:.4g} per 1,000 requests)" for m in better
                )
                + f"; or an API priced above ${own_1k:.4g} per 1,000 requests."
            )
        else:
            parts.append(
                "No cheaper instance type that fits, and no other precision, brings it below the API; an API "
                f"priced above ${own_1k:.4g} per 1,000 requests would."
            )
    else:
        n = info["breakeven_instances"]
        text = f"Owning breaks even at about {r:,.0f} requests/day, on {n} instance{'s' if n != 1 else ''}"
        if n <= cap:
            text += f", which max_instances ({cap}) allows."
        else:
            text += (
                f": more than max_instances ({cap}) allows (at most about {servable:,.0f} requests/day); "
                f"raise max_instances to {n} for owning to pay off."
            )
        parts.append(text)
    if not info["assumed_load_within_capacity"]:
        parts.append(
            f"The assumed {requests_per_day:,.0f} requests/day is beyond what {cap} instance"
            f"{'s' if cap != 1 else ''} serve (about {servable:,.0f}/day): owning as configured does not serve "
            "it, so it is not called cheaper to own."
        )
    return " ".join(parts)


def remedy_text(m: dict[str, Any]) -> str:
    if m["kind"] == "instance_type":
        return f"instance_type {m['value']}"
    note = f", {m['note']}" if m["note"] else ""
    return f"precision {m['value']}{note}"
