"""Each line's basis: pricers hand over facts, `ownllm.cost.wording` alone words them.

The sentences below are the ones the pricers wrote themselves before the facts were split out
(the same figures, the same punctuation), so every report reads as it did."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from ownllm.cost.basis import (
    KINDS,
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
    InstanceChoice,
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
    NotInCatalog,
    PriceNote,
    Recorded,
    ScaleToZero,
    Scaling,
    ScheduledAction,
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
    from_facts,
    to_facts,
)
from ownllm.cost.diff import EstimateFileError, diff_estimates, markdown_diff, read_estimate_file
from ownllm.cost.estimate import estimate_cdk_out
from ownllm.cost.model import Estimate, Item
from ownllm.cost.usage import Usage, usage_from_settings
from ownllm.cost.wording import (
    NO_CHARGE,
    UNPRICED,
    VARIANT_PROBLEMS,
    active_window,
    assumption_lines,
    basis_text,
    capacity_text,
    fallback_warning,
    fit_warning,
    over_capacity_warning,
    warning_text,
)
from ownllm.settings import Settings, read_recorded_settings

from .golden.synths import VARIANTS, read_bundle, unpack

ESTIMATED = PriceNote(NoteKind.ESTIMATED)
FROM_US_EAST_1 = PriceNote(NoteKind.OTHER_REGION, "us-east-1", "ap-southeast-2")
TARGET = "AutoscalingTargetBAE9E297"
AUTOSCALING_1_2 = CapacityRule(CapacityKind.AUTOSCALING, 1, 2, TARGET)


DEFAULT_VARIANT = InstanceHours(
    scaling=Scaling.AUTOSCALING,
    instance_type="ml.g5.2xlarge",
    hourly_usd=1.515,
    initial_count=1,
    hours_per_day=24.0,
    min_count=1,
    max_count=2,
    needed=1,
    low_usd=36.36,
    high_usd=72.72,
    capacity=AUTOSCALING_1_2,
)


def _hours(scaling: Scaling, **changes: object) -> InstanceHours:
    """The default synth's ml.g5.2xlarge variant at $1.515/h, with some facts changed."""
    return replace(DEFAULT_VARIANT, scaling=scaling, **changes)


# (basis, the sentence) for every kind; several for kinds whose sentence has parts.
SENTENCES: list[tuple[Basis, str]] = [
    (
        _hours(Scaling.FIXED, instance_type="ml.g5.4xlarge", hourly_usd=2.03, min_count=1, max_count=1),
        "1 x ml.g5.4xlarge x 24 h x $2.03/h",
    ),
    (
        _hours(
            Scaling.FIXED, instance_type="ml.g5.4xlarge", hourly_usd=2.03, max_count=1, needed=2, notes=(ESTIMATED,)
        ),
        "1 x ml.g5.4xlarge x 24 h x $2.03/h; CAPACITY: the load needs 2 instances, at most 1 can run [estimated price]",
    ),
    (
        _hours(Scaling.AUTOSCALING),
        "expected 1 x ml.g5.2xlarge x $1.515/h x 24 h (ScalableTarget AutoscalingTargetBAE9E297: autoscaling 1..2: min 1 all day; the assumed load needs 1); "
        "range 1..2 instances = $36.36..$72.72/day",
    ),
    (
        _hours(
            Scaling.AUTOSCALING,
            min_count=0,
            low_usd=0.0,
            capacity=CapacityRule(CapacityKind.AUTOSCALING, 0, 2, TARGET),
            scale_to_zero=ScaleToZero(1.0, 450.0, 15.0, 10.0),
        ),
        "expected 1 x ml.g5.2xlarge x $1.515/h x 24 h (ScalableTarget AutoscalingTargetBAE9E297: autoscaling 0..2: "
        "min 0 all day + 1 more for the assumed load (1 needed)); range 0..2 instances = $0.00..$72.72/day; "
        "scales to zero: about 1 cold starts/day, each a ~7.5 min wait (15 min idle to scale in, 10 min to release)",
    ),
    (
        _hours(
            Scaling.SCHEDULED,
            max_count=4,
            high_usd=75.32,
            capacity=CapacityRule(
                CapacityKind.SCHEDULED,
                1,
                2,
                "T",
                (ScheduledAction("cron(0 8 ? * MON-FRI *)", 1, 4, "Europe/Berlin"),),
            ),
            weekly=(WeeklyBound(1, 4, 60.0), WeeklyBound(1, 1, 108.0)),
        ),
        "ml.g5.2xlarge x $1.515/h x 24.00 instance-h/day, the weekly average of: 1..4 for 60 h/week, 1 for 108 h/week "
        "(ScalableTarget T: scheduled actions cron(0 8 ? * MON-FRI *) -> 1..4 (Europe/Berlin); the assumed load needs "
        "1 while traffic arrives); range $36.36..$75.32/day",
    ),
    (
        ChosenAtDeploy(
            (InstanceChoice("ml.g5.2xlarge", 1.515), InstanceChoice("ml.g5.4xlarge", 2.03)),
            1,
            1,
            CapacityRule(CapacityKind.FIXED, 1, 1),
            36.36,
            48.72,
            (ESTIMATED, FROM_US_EAST_1, ESTIMATED),
        ),
        "chosen at deploy time: ml.g5.2xlarge ($1.515/h), ml.g5.4xlarge ($2.03/h); 1..1 instances "
        "(1 instance(s) all week); range $36.36..$48.72/day, counted at the top of the range"
        " [estimated price] [us-east-1 price: the catalog has none for ap-southeast-2]",
    ),
    (
        DataProcessed(1000.0, 4200, 0.0042, 0.016, (ESTIMATED,)),
        "1,000 requests x 4,200 B = 0.0042 GB in+out x $0.016/GB [estimated price]",
    ),
    (DataTransferOut(1000.0, 1368, 0.001368, 0.09), "1,000 responses x 1,368 B = 0.001368 GB x $0.09/GB"),
    (ApiRequests(ApiKind.REST, 1000.0, 3.5), "1,000 requests x $3.50/1M (REST API)"),
    (
        ApiRequests(ApiKind.HTTP, 0.0, 1.0),
        "0 requests x $1.00/1M (HTTP API; each request under 512 KB counts once)",
    ),
    (
        FunctionUsage(1000.0, 3.0, 512.0, "x86_64", 0.0000166667, 0.2, Invocation(Trigger.REQUEST_PATH, None, 3.0)),
        "1,000 invocations x 3.00 s x 0.5 GB (512 MB, x86_64) x $0.0000166667/GB-s + 1,000 x $0.20/1M requests "
        "(on the request path; capped at its 3 s timeout)",
    ),
    (
        FunctionUsage(1000.0, 0.01, 128.0, "arm64", 0.0000133334, 0.2, Invocation(Trigger.AUTHORIZER, 0.01)),
        "1,000 invocations x 0.01 s x 0.125 GB (128 MB, arm64) x $0.0000133334/GB-s + 1,000 x $0.20/1M requests "
        "(API authorizer, once per request; 10 ms per run assumed)",
    ),
    (
        FunctionUsage(24.0, 1.0, 128.0, "x86_64", 0.0000166667, 0.2, Invocation(Trigger.SCHEDULED, 1.0)),
        "24 invocations x 1.00 s x 0.125 GB (128 MB, x86_64) x $0.0000166667/GB-s + 24 x $0.20/1M requests "
        "(scheduled; 1 s per run assumed)",
    ),
    (
        EmittedMetrics(5, 19, 0.3),
        "5 metric(s) emitted on every request x $0.30/metric-month (up to 19 when every error class occurs)",
    ),
    (FilterMetrics(2, 0.3), "2 custom metric(s) x $0.30/metric-month"),
    (
        AlarmMetrics(1, 0.3, AlarmResolution.HIGH, 10.0),
        "1 metric(s) x $0.30/alarm-metric-month (high-resolution, 10 s period)",
    ),
    (
        AlarmMetrics(3, 0.1, AlarmResolution.STANDARD, 300.0),
        "3 metric(s) x $0.10/alarm-metric-month (standard, 300 s period)",
    ),
    (MonthlyFee(Fee.DASHBOARD, 3.0), "1 dashboard x $3.00/month (the 3 free dashboards are not applied)"),
    (MonthlyFee(Fee.KMS_KEY, 1.0), "1 key x $1.00/month (requests not estimated)"),
    (MonthlyFee(Fee.SECRET, 0.4), "1 secret x $0.40/month (API calls not estimated)"),
    (MonthlyFee(Fee.COMPOSITE_ALARM, 0.5), "1 composite alarm x $0.50/month"),
    (
        ScheduledInvocations(5 / 7, "cron(0 8 ? * MON-FRI *)", 1.0),
        "0.714286 invocations/day (cron(0 8 ? * MON-FRI *)) x $1.00/1M (the 14M/month free tier is not applied)",
    ),
    (
        LogVolume(
            (
                LogWriter(LogSource.FUNCTION, 1000.0, 1000, "ForwarderFunctionB3355642"),
                LogWriter(LogSource.ACCESS_LOG, 1000.0, 450),
            ),
            0.00145,
            0.5,
            0.0435,
            0.03,
            30.0,
            30.0,
        ),
        "1,000 x 1,000 B from ForwarderFunctionB3355642 + 1,000 x 450 B of API access log: 0.00145 GB/day x "
        "$0.50/GB ingestion + 0.0435 GB stored (30 days retention, uncompressed) x $0.03/GB-month",
    ),
    (
        LogVolume(
            (LogWriter(LogSource.ENDPOINT, 1000.0, 300, "LlmEndpoint0550A83E"),),
            0.0003,
            0.57,
            0.1095,
            0.03,
            None,
            365,
            ImplicitGroup.SAGEMAKER,
            (ESTIMATED,),
        ),
        "/aws/sagemaker/Endpoints group created by SageMaker, not in the template; 1,000 x 300 B from "
        "LlmEndpoint0550A83E's container: 0.0003 GB/day x $0.57/GB ingestion + 0.1095 GB stored (never expires: "
        "priced at 365 days kept, uncompressed) x $0.03/GB-month [estimated price]",
    ),
    (
        LogVolume(
            (LogWriter(LogSource.FUNCTION, 1000.0, 1000, "Fn"),),
            0.001,
            0.5,
            0.365,
            0.03,
            None,
            365,
            ImplicitGroup.LAMBDA,
        ),
        "/aws/lambda group created by Lambda, not in the template; 1,000 x 1,000 B from Fn: 0.001 GB/day x "
        "$0.50/GB ingestion + 0.365 GB stored (never expires: priced at 365 days kept, uncompressed) x $0.03/GB-month",
    ),
    (NoCharge(NoChargeReason.PLAIN), "no charge"),
    (NoCharge(NoChargeReason.ENDPOINT_CONFIG_USED), "no charge: its instances are billed on the endpoint line"),
    (
        NoCharge(NoChargeReason.DEPLOY_TIME_FUNCTION),
        "no daily charge: a custom-resource handler, invoked only while deploying",
    ),
    (
        NestedStack("OwnLlm", "ServingNestedStack"),
        "no charge: a nested stack; its resources are priced under OwnLlm/ServingNestedStack",
    ),
    (Unpriced(UnpricedReason.BUCKET_CONTENTS), "storage and requests depend on what is stored; not estimated"),
    (
        Unpriced(UnpricedReason.NO_TRIGGER),
        "no trigger found in the templates (API integration, permission for API Gateway, schedule or custom "
        "resource): invocations per day unknown",
    ),
    (NoPricer("AWS::Foo::Bar"), "no pricer for AWS::Foo::Bar"),
    (NoPrice("sagemaker.data-processed"), "no price for sagemaker.data-processed in the catalog"),
    (NotInCatalog(("ml.m5.large",), "us-east-1"), "ml.m5.large is not in the price catalog for us-east-1"),
    (
        NotInCatalog(("ml.m5.large",), "us-east-1", ("ml.g5.2xlarge", "ml.m5.large")),
        "ml.m5.large is not in the price catalog for us-east-1 (an intrinsic chooses between ml.g5.2xlarge, "
        "ml.m5.large)",
    ),
    (UnknownSchedule("at(2027-01-01T00:00:00)"), "schedule 'at(2027-01-01T00:00:00)': invocations per day unknown"),
    (UnknownSchedule(None), "schedule None: invocations per day unknown"),
    (MessageApi("WEBSOCKET"), "WEBSOCKET API: billed per message and connection-minute, not in the catalog"),
    (StageCache("0.5"), "stage cache (0.5 GB) is billed per hour; not in the catalog"),
    (
        UnreadableVariant(VariantProblem.SERVERLESS),
        "serverless inference variant: billed per ms of compute, not in the catalog",
    ),
    (
        UnreadableVariant(VariantProblem.BOUND_UNKNOWN, "Target1A2B", "MinCapacity"),
        "Target1A2B MinCapacity is neither a literal nor a choice between literals (Fn::If, Fn::FindInMap)",
    ),
    (Recorded("1 x ml.g5.4xlarge x 24 h x $2.03/h"), "1 x ml.g5.4xlarge x 24 h x $2.03/h"),
]


@pytest.mark.parametrize(("basis", "sentence"), SENTENCES, ids=[f"{b.kind}-{n}" for n, (b, _) in enumerate(SENTENCES)])
def test_each_basis_kind_reads_as_the_sentence_the_bill_always_printed(basis: Basis, sentence: str) -> None:
    assert basis_text(basis) == sentence


def test_every_basis_kind_has_a_worded_example() -> None:
    assert {b.kind for b, _ in SENTENCES} == set(KINDS)


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (CapacityRule(CapacityKind.FIXED, 2, 2), "2 instance(s) all week"),
        (CapacityRule(CapacityKind.ALTERNATIVES, 1, 2), "1 or 2 instance(s) all week, chosen at deploy time"),
        (AUTOSCALING_1_2, "ScalableTarget AutoscalingTargetBAE9E297: autoscaling 1..2"),
        (CapacityRule(CapacityKind.MANAGED, 0, 3), "managed instance scaling 0..3"),
        (
            CapacityRule(
                CapacityKind.SCHEDULED,
                1,
                4,
                "T",
                (
                    ScheduledAction("cron(0 8 ? * MON-FRI *)", 1, None, "Europe/Paris"),
                    ScheduledAction("cron(0 20 ? * MON-FRI *)", None, 1, "Europe/Berlin"),
                ),
            ),
            "ScalableTarget T: scheduled actions cron(0 8 ? * MON-FRI *) -> 1..=; cron(0 20 ? * MON-FRI *) -> =..1 "
            "(Europe/Berlin, Europe/Paris)",
        ),
    ],
    ids=["fixed", "alternatives", "autoscaling", "managed", "scheduled"],
)
def test_where_the_instance_bounds_come_from_is_worded_by_kind(rule: CapacityRule, text: str) -> None:
    assert capacity_text(rule) == text


@pytest.mark.parametrize(
    ("warning", "text"),
    [
        (
            UnaveragedSchedule("S", "Report1A2B3C4D", "rate(five minutes)"),
            "S/Report1A2B3C4D: schedule 'rate(five minutes)' cannot be averaged over a week; its invocations are "
            "unknown",
        ),
        (
            InvertedBounds("S", "Target1A2B", 3, 2),
            "S/Target1A2B: MinCapacity 3 is above MaxCapacity 2, which Application Auto Scaling refuses; priced as 3 "
            "instances",
        ),
        (
            IgnoredAction("S", "Target1A2B", "'MON#1' depends on the month (L, W or #), not the week"),
            "S/Target1A2B: scheduled action ignored: 'MON#1' depends on the month (L, W or #), not the week",
        ),
    ],
    ids=["unaveraged-schedule", "inverted-bounds", "ignored-action"],
)
def test_what_reading_a_template_warns_about_is_worded_by_kind(warning: TemplateWarning, text: str) -> None:
    assert warning_text(warning) == text


def test_every_fixed_reason_has_its_own_words() -> None:
    """A reason added to an enum without words would fail at render time; this fails first."""
    assert (set(NO_CHARGE), set(UNPRICED), set(VARIANT_PROBLEMS)) == (
        set(NoChargeReason),
        set(UnpricedReason),
        set(VariantProblem),
    )


def test_a_price_from_another_region_says_which_region_it_stands_in_for() -> None:
    assert basis_text(MonthlyFee(Fee.KMS_KEY, 1.0, (FROM_US_EAST_1,))) == (
        "1 key x $1.00/month (requests not estimated) [us-east-1 price: the catalog has none for ap-southeast-2]"
    )


@pytest.mark.parametrize("basis", [b for b, _ in SENTENCES], ids=[b.kind for b, _ in SENTENCES])
def test_every_basis_survives_the_json_file(basis: Basis) -> None:
    assert from_facts(json.loads(json.dumps(to_facts(basis)))) == basis


def test_an_unknown_basis_kind_in_a_file_is_named_with_the_kinds_accepted() -> None:
    with pytest.raises(ValueError) as info:
        from_facts({"kind": "flat-rate"})
    assert str(info.value) == f"basis_facts kind 'flat-rate' is not one of {', '.join(sorted(KINDS))}"


def _item(basis: Basis) -> Item:
    return Item("OwnLlm", "Endpoint", "AWS::SageMaker::Endpoint", 48.72, basis, "instances")


def test_a_line_in_the_json_file_keeps_its_sentence_and_its_facts() -> None:
    basis = _hours(Scaling.FIXED, instance_type="ml.g5.4xlarge", hourly_usd=2.03, max_count=1)
    doc = json.loads(json.dumps(_item(basis).to_dict()))
    assert (doc["basis"], Item.from_dict(doc).basis) == ("1 x ml.g5.4xlarge x 24 h x $2.03/h", basis)


def test_a_line_from_a_file_written_before_facts_were_kept_loads_with_its_sentence() -> None:
    doc = _item(NoPricer("AWS::Foo::Bar")).to_dict()
    del doc["basis_facts"]
    loaded = Item.from_dict(doc)
    assert (loaded.basis, basis_text(loaded.basis)) == (
        Recorded("no pricer for AWS::Foo::Bar"),
        "no pricer for AWS::Foo::Bar",
    )


def test_an_estimate_file_whose_facts_lack_a_field_is_refused_in_one_line_naming_it(tmp_path: Path) -> None:
    est = Estimate([_item(DEFAULT_VARIANT)], "us-east-1", "settings.region", "2026-11", {})
    doc = est.to_dict()
    del doc["items"][0]["basis_facts"]["hourly_usd"]
    path = tmp_path / "cost-estimate.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(EstimateFileError) as info:
        read_estimate_file(path)
    assert str(info.value) == f"{path}: not an ownllm cost estimate (basis_facts InstanceHours lacks hourly_usd)"


def _golden_estimate(name: str, tmp_path: Path) -> Estimate:
    out = unpack(read_bundle(name), tmp_path / name)
    return estimate_cdk_out(out, Settings.from_context(read_recorded_settings(out)))


def test_a_diff_against_an_estimate_file_without_facts_reads_the_same_as_against_one_with_them(tmp_path) -> None:
    """`ownllm cost diff` of a base written before this change: same Markdown, sentence for sentence."""
    base = _golden_estimate("default", tmp_path)
    head = _golden_estimate("two-fixed", tmp_path)
    old = base.to_dict()
    for line in old["items"]:
        del line["basis_facts"]
    assert markdown_diff(diff_estimates(Estimate.from_dict(old), head)) == markdown_diff(diff_estimates(base, head))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_pricers_hand_over_facts_never_sentences(name: str, tmp_path: Path) -> None:
    """Every line of each real synth's estimate carries a Basis the pricer built, not a string nor a
    sentence read back from a file: a pricer that writes English again turns this red."""
    est = _golden_estimate(name, tmp_path)
    kinds = tuple(cls for cls in KINDS.values() if cls is not Recorded)
    wrong = [(i.logical_id, type(i.basis).__name__) for i in est.items if not isinstance(i.basis, kinds)]
    assert wrong == []


ROW = {"stack": "OwnLlm", "endpoint": "Endpoint", "instance_type": "ml.g5.2xlarge", "instances_needed": 7}


def test_a_load_beyond_max_instances_is_warned_with_the_endpoint_and_both_counts() -> None:
    assert over_capacity_warning(ROW | {"max_instances": 2}) == (
        "OwnLlm/Endpoint (ml.g5.2xlarge): the assumed load needs 7 instances but at most 2 can run; raise "
        "max_instances or instance_tokens_per_s if measured"
    )


def test_a_model_that_does_not_fit_is_warned_with_the_capacity_modules_message() -> None:
    assert fit_warning(ROW | {"fit_problem": "needs 140 GiB of GPU memory"}) == (
        "OwnLlm/Endpoint (ml.g5.2xlarge): needs 140 GiB of GPU memory"
    )


def test_prices_from_another_region_are_warned_once_per_stack() -> None:
    assert fallback_warning("OwnLlm", ["kms.key", "logs.ingestion"], "us-east-1", "ap-southeast-2") == (
        "OwnLlm: kms.key, logs.ingestion priced at us-east-1 rates (the catalog has none for ap-southeast-2)"
    )


def test_the_assumptions_say_when_requests_arrive_and_how_each_speed_was_reached(settings) -> None:
    """Business hours 08:00-20:00 Mon-Fri = 60 h/week; 192 / 40 tokens/s + 0.2 s = 5.00 s in the Lambda."""
    usage = usage_from_settings(settings(active_hours="08:00-20:00", timezone="Europe/Berlin"))
    lines = assumption_lines(usage)
    assert lines[:4] == [
        "1,000 requests/day, arriving evenly over 08:00-20:00 MON,TUE,WED,THU,FRI (Europe/Berlin), 60 h/week "
        "(settings.active_hours)",
        "500 input + 192 output tokens per request (average)",
        "40 tokens/s per request (calibrated: settings.generation_tokens_per_s (ownllm bench --calibrate)), so a "
        "request takes 192 / 40 + 0.2 s overhead = 5.00 s in the Lambda",
        "instance throughput 320 output tokens/s (calibrated: settings.instance_tokens_per_s (ownllm bench "
        "--calibrate))",
    ]
    assert (lines[-1], usage.to_dict()["active_window"]) == (
        "on-demand prices, no free tier, no savings plan",
        "evenly over 08:00-20:00 MON,TUE,WED,THU,FRI (Europe/Berlin), 60 h/week (settings.active_hours)",
    )


def test_without_active_hours_requests_arrive_all_week() -> None:
    assert active_window(Usage(1000, 500, 192, 40.0, 320.0, "test")) == "24 h a day, 7 days a week"
