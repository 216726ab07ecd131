"""The monitoring stack: alarms to one SNS topic, a daily cost budget, one dashboard.

Metric facts (names, dimensions, units, valid statistics), read 2026-12-02:
- AWS/SageMaker `ModelLatency` (EndpointName, VariantName): microseconds; valid statistics
  Average, Sum, Min, Max, SampleCount, so no percentiles (unlike ModelSetupTime beside it):
  https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html (also
  awsdocs/amazon-sagemaker-developer-guide doc_source/monitoring-cloudwatch.md). The same
  table gives InvocationsPerInstance as 1/instances per request (valid statistic Sum).
- AWS/SageMaker `ConcurrentRequestsPerModel` (EndpointName, VariantName): requests a model
  container is handling, queued ones included, every 10 s; the metric the target-tracking
  policy holds at the autoscaling target (Settings.autoscaling_target)
  (https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-add-code-define.html).
- /aws/sagemaker/Endpoints `GPUMemoryUtilization` is 0-100 x GPU count; vLLM reserves ~90% of
  GPU memory at start-up, so it is graphed, never alarmed.
- AWS Budgets accepts FORECASTED notifications only on MONTHLY, QUARTERLY or ANNUALLY budgets;
  a DAILY budget with one fails at create with InvalidParameterException (seen with OpenTofu in
  https://github.com/JiRaska/open-bank-oss/pull/226, 2026-07).
"""

from __future__ import annotations

from collections.abc import Callable

from aws_cdk import (
    Annotations,
    Aws,
    CfnCondition,
    CfnOutput,
    Duration,
    Environment,
    Fn,
    ICfnConditionExpression,
    RemovalPolicy,
    Stack,
    Token,
)
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from ownllm import regions
from ownllm.forwarder import METRICS_NAMESPACE, SERVICE_NAME, contract
from ownllm.settings import Settings
from stacks.api import STAGE, Api
from stacks.serving import VARIANT, ServingEndpoint

PERIOD = Duration.minutes(5)
# The AWS services whose cost the budget watches (Cost Explorer service names).
BUDGET_SERVICES = ["Amazon SageMaker", "AWS Lambda", "Amazon API Gateway", "AmazonCloudWatch"]
# Target tracking holds ConcurrentRequestsPerModel at the target; this much above it for
# SATURATED_PERIODS means scaling cannot keep up (at max_instances, or instances still loading).
SATURATION_FACTOR = 1.5
SATURATED_PERIODS = 3
# Running at max_instances this long (30 min) is worth a look: the bill is at its ceiling
# and the next burst queues.
AT_MAX_PERIODS = 6
BUDGET_CONDITION = "BudgetsAvailable"
# Fn::Or takes 2 to 10 conditions (CloudFormation condition functions reference).
_FN_OR_MAX = 10


def publish_conditions(service: str) -> dict[str, dict[str, object]]:
    """aws:SourceAccount / aws:SourceArn for a service principal that publishes to the topic
    (confused-deputy guidance). Budgets: `arn:aws:budgets::<account>:*` (AWS Cost Management
    guide, budgets-sns-policy); CloudWatch: the account's alarms in this region."""
    if service == "budgets":
        source_arn = f"arn:{Aws.PARTITION}:budgets::{Aws.ACCOUNT_ID}:*"
    else:
        source_arn = f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"
    return {"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}, "ArnLike": {"aws:SourceArn": source_arn}}


class AlarmTopic(Construct):
    """SNS topic for alarms: KMS-encrypted, SSL-only, publishable by this account's CloudWatch
    alarms and (where a budget exists) its Budgets, each only on its own behalf."""

    def __init__(self, scope: Construct, id: str, *, alarm_email: str | None, budgets: bool) -> None:
        super().__init__(scope, id)
        self.key = kms.Key(
            self,
            "Key",
            enable_key_rotation=True,
            description="Encrypts the ownllm alarm topic",
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.topic = sns.Topic(self, "Topic", display_name="ownllm alarms", master_key=self.key, enforce_ssl=True)
        for service in ("cloudwatch", "budgets") if budgets else ("cloudwatch",):
            principal = iam.ServicePrincipal(f"{service}.amazonaws.com")
            conditions = publish_conditions(service)
            self.topic.add_to_resource_policy(
                iam.PolicyStatement(
                    actions=["sns:Publish"],
                    principals=[principal],
                    resources=[self.topic.topic_arn],
                    conditions=conditions,
                )
            )
            # Publishing to a KMS-encrypted topic needs the key too (SNS key-management docs,
            # "compatibility with AWS services"). CloudWatch's key requests carry the source
            # conditions (aws/modern-data-architecture-accelerator grantCloudWatchAlarmsTopicAccess
            # notes); for Budgets no AWS page says either way: check that the first budget
            # notification arrives after a deploy.
            self.key.add_to_resource_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    principals=[principal],
                    resources=["*"],  # in a key policy "*" means this key
                    conditions=conditions,
                )
            )
        if alarm_email:
            self.topic.add_subscription(subs.EmailSubscription(alarm_email))


class LlmMonitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: Settings,
        serving: ServingEndpoint,
        api: Api,
        function: lambda_.IFunction,
        daily_budget_usd: float,
    ) -> None:
        super().__init__(scope, id)
        s = settings
        region = Stack.of(self).region
        known_region = not Token.is_unresolved(region)
        budgets_here = regions.has_budgets(region) if known_region else True
        self.topic = AlarmTopic(self, "Alarms", alarm_email=s.alarm_email, budgets=budgets_here).topic
        action = cw_actions.SnsAction(self.topic)
        api_dims = {"ApiName": api.rest_api.rest_api_name, "Stage": STAGE}
        # A scale-to-zero model is an inference component: SageMaker reports its invocations per
        # component (InferenceComponentName) and per copy rather than per variant and instance
        # (monitoring-cloudwatch, "SageMaker AI inference component metrics").
        to_zero = serving.scale_to_zero
        sm_dims = (
            {"InferenceComponentName": serving.inference_component_name}
            if to_zero
            else {"EndpointName": serving.endpoint_name, "VariantName": VARIANT}
        )

        def api_metric(name: str, stat: str) -> cw.Metric:
            return cw.Metric(
                namespace="AWS/ApiGateway", metric_name=name, dimensions_map=api_dims, statistic=stat, period=PERIOD
            )

        def sm_metric(name: str, stat: str, namespace: str = "AWS/SageMaker") -> cw.Metric:
            return cw.Metric(
                namespace=namespace, metric_name=name, dimensions_map=sm_dims, statistic=stat, period=PERIOD
            )

        api_5xx_rate = api_metric("5XXError", "Average")  # 0/1 per request, so the average is the rate
        invocation_5xx = sm_metric("Invocation5XXErrors", "Sum")
        concurrency = sm_metric("ConcurrentRequestsPerCopy" if to_zero else "ConcurrentRequestsPerModel", "Average")
        per_unit = "InvocationsPerCopy" if to_zero else "InvocationsPerInstance"
        instances = cw.MathExpression(
            # InvocationsPerInstance (per copy) adds 1/instances per request, so the ratio is the count.
            expression="invocations / perInstance",
            using_metrics={"invocations": sm_metric("Invocations", "Sum"), "perInstance": sm_metric(per_unit, "Sum")},
            label=f"{'Copies' if to_zero else 'Instances'} in service (Invocations / {per_unit})",
            period=PERIOD,
        )
        timeout_ms = s.function_timeout_s * 1000
        saturated = s.autoscaling_target * SATURATION_FACTOR

        at_least = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        above = cw.ComparisonOperator.GREATER_THAN_THRESHOLD
        specs: list[tuple[str, cw.IMetric, float, int, cw.ComparisonOperator, str]] = [
            (
                "ApiLatencyP95",
                api_metric("Latency", "p95"),
                s.latency_alarm_ms,
                3,
                above,
                f"API p95 latency above {s.latency_alarm_ms} ms",
            ),
            ("Api5xxRate", api_5xx_rate, 0.05, 2, above, "More than 5% of API requests fail with 5XX"),
            (
                "LambdaErrors",
                function.metric_errors(period=PERIOD, statistic="Sum"),
                5,
                1,
                at_least,
                "Forwarder Lambda errors (unhandled exceptions) in 5 minutes",
            ),
            (
                "LambdaThrottles",
                function.metric_throttles(period=PERIOD, statistic="Sum"),
                1,
                1,
                at_least,
                "Forwarder Lambda throttled",
            ),
            (
                "LambdaDurationNearTimeout",
                function.metric_duration(period=PERIOD, statistic="p99"),
                0.9 * timeout_ms,
                2,
                above,
                f"Forwarder p99 duration above 90% of its {s.function_timeout_s} s timeout",
            ),
            (
                # ModelLatency has no percentiles: this fires when the *average* request takes
                # longer than the p95 target, a clear regression rather than a slow tail.
                "ModelLatencyAverage",
                sm_metric("ModelLatency", "Average"),
                s.latency_alarm_ms * 1000,  # ms -> microseconds
                3,
                above,
                f"SageMaker ModelLatency average above {s.latency_alarm_ms} ms",
            ),
            ("Invocation5xxErrors", invocation_5xx, 5, 1, at_least, "SageMaker endpoint returned 5XX errors"),
            (
                "ConcurrencyAboveTarget",
                concurrency,
                saturated,
                SATURATED_PERIODS,
                above,
                f"Requests queue: concurrent requests per instance above {saturated:g} "
                f"({SATURATION_FACTOR:g} x the scaling target {s.autoscaling_target}) for "
                f"{SATURATED_PERIODS * 5} minutes",
            ),
        ]
        if s.max_instances > s.min_instances:  # with a fixed fleet, "at max" is the normal state
            specs.append(
                (
                    "AtMaxInstances",
                    instances,
                    s.max_instances - 0.5,  # a per-period average: the whole period at max is max
                    AT_MAX_PERIODS,
                    above,
                    f"The endpoint ran at max_instances ({s.max_instances}) for {AT_MAX_PERIODS * 5} minutes",
                )
            )
        self.alarms: dict[str, cw.Alarm] = {}
        for name, metric, threshold, periods, operator, description in specs:
            alarm = cw.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                comparison_operator=operator,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            alarm.add_alarm_action(action)
            self.alarms[name] = alarm

        self.budget = self._daily_budget(s, daily_budget_usd, region if known_region else None)
        self._dashboard(s, api_metric, sm_metric, function, invocation_5xx, concurrency, instances)
        self.dashboard_url = (
            f"https://console.aws.amazon.com/cloudwatch/home?region={Aws.REGION}#dashboards:name={s.stack_prefix}-llm"
        )

    def _daily_budget(self, s: Settings, daily_budget_usd: float, region: str | None) -> budgets.CfnBudget | None:
        """A DAILY cost budget with an ACTUAL notification (Budgets accepts FORECASTED only on
        MONTHLY, QUARTERLY or ANNUALLY budgets). Only where CloudFormation has the resource type:
        a known region without it gets no budget and a synth warning; an environment-agnostic
        stack gets the budget under a condition on AWS::Region."""
        if region is not None and not regions.has_budgets(region):
            Annotations.of(self).add_warning_v2(
                "ownllm:no-budget",
                f"AWS::Budgets::Budget is not available in {region}: no daily cost budget is created. "
                "Create one in a region that has it, or watch the cost estimate (cdk.out/cost-estimate.md).",
            )
            return None
        budget = budgets.CfnBudget(
            self,
            "DailyCostBudget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_name=f"{s.stack_prefix}-llm-daily",
                budget_type="COST",
                time_unit="DAILY",
                budget_limit=budgets.CfnBudget.SpendProperty(amount=round(daily_budget_usd, 2), unit="USD"),
                cost_filters={"Service": BUDGET_SERVICES},
            ),
            notifications_with_subscribers=[
                budgets.CfnBudget.NotificationWithSubscribersProperty(
                    notification=budgets.CfnBudget.NotificationProperty(
                        notification_type="ACTUAL",
                        comparison_operator="GREATER_THAN",
                        threshold=100,
                        threshold_type="PERCENTAGE",
                    ),
                    subscribers=[
                        budgets.CfnBudget.SubscriberProperty(subscription_type="SNS", address=self.topic.topic_arn)
                    ],
                )
            ],
        )
        if region is None:
            budget.cfn_options.condition = CfnCondition(
                Stack.of(self), BUDGET_CONDITION, expression=region_in(regions.BUDGET_REGIONS)
            )
        return budget

    def _dashboard(
        self,
        s: Settings,
        api_metric: Callable[[str, str], cw.Metric],
        sm_metric: Callable[..., cw.Metric],
        function: lambda_.IFunction,
        invocation_5xx: cw.Metric,
        concurrency: cw.Metric,
        instances: cw.MathExpression,
    ) -> None:
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"{s.stack_prefix}-llm")
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Requests", left=[api_metric("Count", "Sum")], width=8),
            cw.GraphWidget(
                title="API latency (ms)",
                left=[api_metric("Latency", p) for p in ("p50", "p90", "p95", "p99")],
                left_annotations=[cw.HorizontalAnnotation(value=s.latency_alarm_ms, label="p95 alarm")],
                width=8,
            ),
            cw.GraphWidget(
                title="Errors",
                left=[
                    api_metric("4XXError", "Sum"),
                    api_metric("5XXError", "Sum"),
                    function.metric_errors(period=PERIOD),
                    invocation_5xx,
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Model latency (ms)",
                left=[
                    cw.MathExpression(
                        expression=f"latency{stat} / 1000",  # microseconds -> ms
                        using_metrics={f"latency{stat}": sm_metric("ModelLatency", stat)},
                        label=f"ModelLatency {stat}",
                        period=PERIOD,
                    )
                    for stat in ("Average", "Maximum")
                ],
                left_annotations=[cw.HorizontalAnnotation(value=s.latency_alarm_ms, label="average alarm")],
                width=6,
            ),
            cw.GraphWidget(
                title="Concurrent requests per instance",
                left=[concurrency],
                left_annotations=[
                    cw.HorizontalAnnotation(value=s.autoscaling_target, label="scaling target"),
                    cw.HorizontalAnnotation(value=s.autoscaling_target * SATURATION_FACTOR, label="queueing alarm"),
                ],
                width=6,
            ),
            cw.GraphWidget(
                title="GPU utilisation (%, x GPU count)",
                left=[
                    sm_metric("GPUUtilization", "Average", "/aws/sagemaker/Endpoints"),
                    sm_metric("GPUMemoryUtilization", "Maximum", "/aws/sagemaker/Endpoints"),
                ],
                width=6,
            ),
            cw.GraphWidget(title="Instances", left=[instances], width=6),
        )
        # The forwarder's own EMF metrics (Powertools adds the `service` dimension).
        c = contract()
        service = {"service": SERVICE_NAME}
        errors_by_class = f"{c.ERROR_CLASS_DIMENSION},service"
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Tokens",
                left=[
                    cw.Metric(
                        namespace=METRICS_NAMESPACE,
                        metric_name=m,
                        dimensions_map=service,
                        statistic="Sum",
                        period=PERIOD,
                    )
                    for m in (c.PROMPT_TOKENS, c.COMPLETION_TOKENS)
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Forwarder errors by class",
                left=[
                    cw.MathExpression(
                        expression=f"SEARCH('{{{METRICS_NAMESPACE},{errors_by_class}}} MetricName=\"{c.ERRORS}\"', 'Sum', 300)",
                        label="",
                        period=PERIOD,
                    )
                ],
                width=12,
            ),
        )


def region_in(names: tuple[str, ...]) -> ICfnConditionExpression:
    """`AWS::Region` is one of `names`, as nested Fn::Or (each takes at most 10 conditions)."""
    terms: list[ICfnConditionExpression] = [Fn.condition_equals(Aws.REGION, name) for name in names]
    while len(terms) > 1:
        terms = [
            Fn.condition_or(*chunk) if len(chunk) > 1 else chunk[0]
            for chunk in (terms[i : i + _FN_OR_MAX] for i in range(0, len(terms), _FN_OR_MAX))
        ]
    return terms[0]


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: Settings,
        serving: ServingEndpoint,
        api: Api,
        function: lambda_.IFunction,
        daily_budget_usd: float,
        env: Environment | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(scope, id, env=env, description=description)
        self.monitoring = LlmMonitoring(
            self,
            "Monitoring",
            settings=settings,
            serving=serving,
            api=api,
            function=function,
            daily_budget_usd=daily_budget_usd,
        )
        CfnOutput(self, "DashboardUrl", value=self.monitoring.dashboard_url)
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)
