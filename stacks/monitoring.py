"""The monitoring stack: alarms to one SNS topic, a daily cost budget, one dashboard."""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from ownllm.forwarder import METRICS_NAMESPACE, SERVICE_NAME
from ownllm.settings import Settings
from stacks.api import STAGE, Api
from stacks.serving import VARIANT, ServingEndpoint

PERIOD = Duration.minutes(5)
# The AWS services whose cost the budget watches (Cost Explorer service names).
BUDGET_SERVICES = ["Amazon SageMaker", "AWS Lambda", "Amazon API Gateway", "AmazonCloudWatch"]


class AlarmTopic(Construct):
    """SNS topic for alarms: KMS-encrypted, SSL-only, publishable by CloudWatch and Budgets."""

    def __init__(self, scope: Construct, id: str, *, alarm_email: str | None) -> None:
        super().__init__(scope, id)
        self.key = kms.Key(
            self,
            "Key",
            enable_key_rotation=True,
            description="Encrypts the ownllm alarm topic",
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.topic = sns.Topic(self, "Topic", display_name="ownllm alarms", master_key=self.key, enforce_ssl=True)
        for service in ("cloudwatch.amazonaws.com", "budgets.amazonaws.com"):
            principal = iam.ServicePrincipal(service)
            self.topic.grant_publish(principal)
            self.key.grant(principal, "kms:Decrypt", "kms:GenerateDataKey*")
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
        self.topic = AlarmTopic(self, "Alarms", alarm_email=s.alarm_email).topic
        action = cw_actions.SnsAction(self.topic)
        api_dims = {"ApiName": api.rest_api.rest_api_name, "Stage": STAGE}
        sm_dims = {"EndpointName": serving.endpoint_name, "VariantName": VARIANT}

        def api_metric(name: str, stat: str) -> cw.Metric:
            return cw.Metric(
                namespace="AWS/ApiGateway", metric_name=name, dimensions_map=api_dims, statistic=stat, period=PERIOD
            )

        def sm_metric(name: str, stat: str, namespace: str = "AWS/SageMaker") -> cw.Metric:
            return cw.Metric(
                namespace=namespace, metric_name=name, dimensions_map=sm_dims, statistic=stat, period=PERIOD
            )

        api_latency_p95 = api_metric("Latency", "p95")
        api_5xx_rate = api_metric("5XXError", "Average")  # 0/1 per request, so the average is the rate
        model_latency_p95 = sm_metric("ModelLatency", "p95")  # microseconds
        invocation_5xx = sm_metric("Invocation5XXErrors", "Sum")
        gpu_memory = sm_metric("GPUMemoryUtilization", "Maximum", "/aws/sagemaker/Endpoints")
        gpu_util = sm_metric("GPUUtilization", "Average", "/aws/sagemaker/Endpoints")
        timeout_ms = s.lambda_timeout_s * 1000

        specs = [
            ("ApiLatencyP95", api_latency_p95, s.latency_p95_ms, 3, f"API p95 latency above {s.latency_p95_ms} ms"),
            ("Api5xxRate", api_5xx_rate, 0.05, 2, "More than 5% of API requests fail with 5XX"),
            (
                "LambdaErrors",
                function.metric_errors(period=PERIOD, statistic="Sum"),
                5,
                1,
                "Forwarder Lambda errors (unhandled exceptions) in 5 minutes",
            ),
            (
                "LambdaThrottles",
                function.metric_throttles(period=PERIOD, statistic="Sum"),
                1,
                1,
                "Forwarder Lambda throttled",
            ),
            (
                "LambdaDurationNearTimeout",
                function.metric_duration(period=PERIOD, statistic="p99"),
                0.9 * timeout_ms,
                2,
                f"Forwarder p99 duration above 90% of its {s.lambda_timeout_s} s timeout",
            ),
            (
                "ModelLatencyP95",
                model_latency_p95,
                s.latency_p95_ms * 1000,
                3,
                f"SageMaker ModelLatency p95 above {s.latency_p95_ms} ms",
            ),
            ("Invocation5xxErrors", invocation_5xx, 5, 1, "SageMaker endpoint returned 5XX errors"),
            # GPUMemoryUtilization is per GPU summed: 0..100 x GPU count.
            (
                "GpuMemoryHigh",
                gpu_memory,
                s.gpu_memory_alarm_percent * s.gpu_count,
                3,
                f"GPU memory above {s.gpu_memory_alarm_percent:g}% on every GPU",
            ),
        ]
        self.alarms: dict[str, cw.Alarm] = {}
        for name, metric, threshold, periods, description in specs:
            alarm = cw.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
                if name in ("LambdaErrors", "LambdaThrottles", "Invocation5xxErrors")
                else cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            alarm.add_alarm_action(action)
            self.alarms[name] = alarm

        self.budget = budgets.CfnBudget(
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
                        notification_type=kind,
                        comparison_operator="GREATER_THAN",
                        threshold=100,
                        threshold_type="PERCENTAGE",
                    ),
                    subscribers=[
                        budgets.CfnBudget.SubscriberProperty(subscription_type="SNS", address=self.topic.topic_arn)
                    ],
                )
                for kind in ("ACTUAL", "FORECASTED")
            ],
        )

        instances = cw.MathExpression(
            expression="invocations / perInstance",
            using_metrics={
                "invocations": sm_metric("Invocations", "Sum"),
                "perInstance": sm_metric("InvocationsPerInstance", "Sum"),
            },
            label="Instances in service (Invocations / InvocationsPerInstance)",
            period=PERIOD,
        )
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"{s.stack_prefix}-llm")
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Requests", left=[api_metric("Count", "Sum")], width=8),
            cw.GraphWidget(
                title="API latency (ms)",
                left=[api_metric("Latency", p) for p in ("p50", "p90", "p95", "p99")],
                left_annotations=[cw.HorizontalAnnotation(value=s.latency_p95_ms, label="p95 alarm")],
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
                title="Model latency (us)", left=[sm_metric("ModelLatency", p) for p in ("p50", "p95", "p99")], width=8
            ),
            cw.GraphWidget(title="GPU utilisation (%)", left=[gpu_util, gpu_memory], width=8),
            cw.GraphWidget(title="Instances", left=[instances], width=8),
        )
        # The forwarder's own EMF metrics (Powertools adds the `service` dimension).
        service = {"service": SERVICE_NAME}
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
                    for m in ("PromptTokens", "CompletionTokens")
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Forwarder errors by class",
                left=[
                    cw.MathExpression(
                        expression=f"SEARCH('{{{METRICS_NAMESPACE},ErrorClass,service}} MetricName=\"Errors\"', 'Sum', 300)",
                        label="",
                        period=PERIOD,
                    )
                ],
                width=12,
            ),
        )
        self.dashboard_url = (
            f"https://console.aws.amazon.com/cloudwatch/home?region={Aws.REGION}#dashboards:name={s.stack_prefix}-llm"
        )


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
        **kwargs,
    ) -> None:
        super().__init__(scope, id, **kwargs)
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
