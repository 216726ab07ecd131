"""The API stack: a regional REST API (API key + usage plan) in front of the forwarding Lambda."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import jsii
from aws_cdk import (
    AssetHashType,
    Aws,
    BundlingOptions,
    CfnOutput,
    DockerImage,
    Duration,
    Environment,
    ILocalBundling,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from ownllm.artifacts import ModelArtifacts
from ownllm.cost.pricers.functions import CUSTOM_METRICS_METADATA
from ownllm.forwarder import (
    ASSET_EXCLUDE,
    BUNDLED_DISTRIBUTIONS,
    WEB_ADAPTER_HANDLER,
    WEB_ADAPTER_LAYER,
    bundle,
    bundle_fingerprint,
    contract,
    custom_metrics,
    forwarder_environment,
    web_adapter_environment,
)
from ownllm.gateway_responses import gateway_errors
from ownllm.settings import RETENTION_DAYS, Settings
from stacks.nag import acknowledge
from stacks.serving import ServingEndpoint

LAMBDA_DIR = Path(__file__).resolve().parent.parent / "lambda"
FORWARDER_CODE = LAMBDA_DIR / "forwarder"
AUTHORIZER_CODE = LAMBDA_DIR / "authorizer"
# The newest Python runtime of aws-cdk-lib 2.275. The forwarder brings its own Powertools and
# botocore (ownllm.forwarder.BUNDLED_DISTRIBUTIONS), so no Powertools layer and not the runtime's botocore.
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64  # 20% cheaper per GB-s than x86_64
STAGE = "prod"
# The OpenAI routes that may stream (lambda/forwarder/main.py STREAM_ROUTES, under /v1; main.py
# cannot be imported at synth, so test_streaming_api.py reads it from the asset and compares):
# their methods get the api_timeout_s budget.
STREAMING_ROUTES = ("chat/completions", "completions")
# The stage throttle counts every request, keyed or not; the usage plan counts one key's. With
# both equal, keyless or bad-key traffic (rejected by the authorizer, but counted first) could
# use up the stage's allowance and throttle the key holders. The stage therefore allows what
# all plans allow together (one plan, one key today) times this factor: the excess is headroom
# for rejected traffic, while the stage limit still caps what reaches the Lambda. A flood from
# many addresses needs more than throttling: AWS WAF rate-based rules on the stage are the next
# step (see the AwsSolutions-APIG3 note below).
STAGE_THROTTLE_FACTOR = 2


class LoggedFunction(Construct):
    """A Python Lambda (newest runtime, arm64, JSON logs) with its own log group of finite
    retention and a role that may write only there, in place of the
    AWSLambdaBasicExecutionRole managed policy."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        code_path: Path,
        retention_days: int,
        iam5_reason: str,
        memory_size: int,
        timeout: Duration,
        description: str,
        tracing: lambda_.Tracing | None = None,
        layers: Sequence[lambda_.ILayerVersion] | None = None,
        environment: Mapping[str, str] | None = None,
        handler: str = "app.handler",
        code: lambda_.Code | None = None,
    ) -> None:
        """code: the asset, when it is more than code_path's files (default: those files)."""
        super().__init__(scope, id)
        self.log_group = logs.LogGroup(
            self, "Logs", retention=retention(retention_days), removal_policy=RemovalPolicy.DESTROY
        )
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=handler,
            code=code or lambda_.Code.from_asset(str(code_path), exclude=list(ASSET_EXCLUDE)),
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            memory_size=memory_size,
            timeout=timeout,
            description=description,
            tracing=tracing,
            layers=layers,
            environment=environment,
        )
        acknowledge(self.role, "AwsSolutions-IAM5[Resource::*]", iam5_reason)


@jsii.implements(ILocalBundling)
class SitePackagesBundler:
    """Bundles a Lambda asset without Docker: its source files, plus the named pure-Python
    distributions copied from the site-packages this synth runs in, so the function runs the
    very versions the tests ran (pinned in pyproject.toml; ownllm.forwarder.bundle)."""

    def __init__(self, source: Path, distributions: Sequence[str]) -> None:
        self.source = source
        self.distributions = tuple(distributions)

    def try_bundle(self, output_dir: str, *_options: object, **_keywords: object) -> bool:
        """The bundling options are not needed; jsii passes them as one positional struct, while
        the ILocalBundling protocol spells them as keywords: this signature accepts both."""
        bundle(self.source, self.distributions, Path(output_dir))
        return True


class Forwarder(LoggedFunction):
    """The Lambda that validates OpenAI-shaped requests and forwards them to the endpoint.

    It runs `main:app` (lambda/forwarder/main.py) in uvicorn behind Lambda Web Adapter, so a
    `stream: true` completion is sent chunk by chunk through API Gateway's STREAM transfer mode;
    every other request goes to the buffered handler, app.handler, inside the same function."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: Settings,
        serving: ServingEndpoint,
        artifacts: ModelArtifacts,
        code_path: Path = FORWARDER_CODE,
    ) -> None:
        s = settings
        super().__init__(
            scope,
            id,
            code_path=code_path,
            code=lambda_.Code.from_asset(
                str(code_path),
                # What is bundled, hashed before bundling: a new uvicorn, botocore or Powertools is a
                # new asset, and an unchanged one already staged in cdk.out is not bundled again.
                asset_hash_type=AssetHashType.CUSTOM,
                asset_hash=bundle_fingerprint(code_path, BUNDLED_DISTRIBUTIONS),
                bundling=BundlingOptions(
                    # Never pulled: the local bundler always succeeds (CDK requires an image).
                    image=DockerImage.from_registry("public.ecr.aws/lambda/python:3.14"),
                    local=SitePackagesBundler(code_path, BUNDLED_DISTRIBUTIONS),
                ),
            ),
            handler=WEB_ADAPTER_HANDLER,
            retention_days=s.log_retention_days,
            iam5_reason="X-Ray's PutTraceSegments/PutTelemetryRecords only accept '*'; log streams of the "
            "function's own log group are created at run time.",
            memory_size=s.lambda_memory_mb,
            # One second inside the streaming integration's timeout: the function's own deadline
            # (which main.py reads) ends a stream before API Gateway cuts it. Buffered answers end
            # within InvokeEndpoint's 60 s (app.handler), or 29 s off the completion routes (main.py).
            timeout=Duration.seconds(s.function_timeout_s),
            tracing=lambda_.Tracing.ACTIVE,
            layers=[
                lambda_.LayerVersion.from_layer_version_arn(
                    scope, f"{id}WebAdapter", WEB_ADAPTER_LAYER.format(partition=Aws.PARTITION, region=Aws.REGION)
                ),
            ],
            environment={
                **forwarder_environment(
                    s,
                    endpoint_name=serving.endpoint_name,
                    adapters=artifacts.adapters,
                    inference_component=serving.inference_component_name if serving.scale_to_zero else None,
                ),
                **web_adapter_environment(),
            },
            description=f"OpenAI-compatible front for SageMaker endpoint {serving.endpoint_name}",
        )
        serving.grant_invoke(self.function)
        # What the forwarder emits as EMF metrics (contract.METRICS, and one Errors metric per
        # contract.ERROR_CLASSES), declared so the cost estimate prices them ($0.30/metric-month each).
        cast(lambda_.CfnFunction, self.function.node.default_child).add_metadata(
            CUSTOM_METRICS_METADATA, custom_metrics()
        )


class KeyAuthorizer(LoggedFunction):
    """Request authorizer that lets OpenAI clients send the API key as `api_key=` (a Bearer
    token). It only extracts the key; API Gateway validates it against the usage plan."""

    def __init__(self, scope: Construct, id: str, *, settings: Settings) -> None:
        super().__init__(
            scope,
            id,
            code_path=AUTHORIZER_CODE,
            retention_days=settings.log_retention_days,
            iam5_reason="Log streams of the authorizer's own log group are created at run time.",
            memory_size=128,
            timeout=Duration.seconds(3),
            description="Extracts the API key from Authorization: Bearer or x-api-key",
        )
        # No identity source and no caching: a request with only x-api-key must reach the
        # authorizer too (an identity source would turn a missing Authorization into 401).
        self.authorizer = apigw.RequestAuthorizer(
            self, "Authorizer", handler=self.function, identity_sources=[], results_cache_ttl=Duration.seconds(0)
        )


class Api(Construct):
    """Regional REST API with API-key auth, throttling and a daily quota, JSON access logs and X-Ray."""

    def __init__(self, scope: Construct, id: str, *, settings: Settings, handler: lambda_.IFunction) -> None:
        super().__init__(scope, id)
        s = settings
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=retention(s.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=f"{s.stack_prefix}-llm-api",
            description="OpenAI-compatible API for a self-hosted LLM (ownllm)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # The authorizer hands API Gateway the key from `Authorization: Bearer` or `x-api-key`.
            api_key_source_type=apigw.ApiKeySourceType.AUTHORIZER,
            cloud_watch_role=s.apigw_cloudwatch_role,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN if s.apigw_cloudwatch_role else None,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE,
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # never log request bodies (prompts)
                metrics_enabled=True,
                throttling_rate_limit=s.api_rate_limit_rps * STAGE_THROTTLE_FACTOR,
                throttling_burst_limit=s.api_burst_limit * STAGE_THROTTLE_FACTOR,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
            ),
        )
        self.authorizer = KeyAuthorizer(self, "KeyAuthorizer", settings=s)
        # The function answers through Lambda Web Adapter in response_stream mode, so every method
        # invokes it with InvokeWithResponseStream (STREAM transfer mode). Only the completion
        # routes get the long budget: everything else is a buffered answer inside 29 s.
        buffered = self._integration(handler, Duration.seconds(contract().API_GATEWAY_TIMEOUT_S))
        streamed = self._integration(handler, Duration.seconds(s.api_timeout_s))
        v1 = self.rest_api.root.add_resource("v1")
        self._add_method(v1.add_resource("{proxy+}"), buffered)
        for route in STREAMING_ROUTES:
            resource: apigw.IResource = v1
            for part in route.split("/"):
                resource = resource.get_resource(part) or resource.add_resource(part)
            # ANY, not POST: other methods still reach the forwarder, which answers 405 with Allow.
            self._add_method(resource, streamed)

        self.api_key = self.rest_api.add_api_key("ApiKey", description="ownllm API key")
        self.usage_plan = self.rest_api.add_usage_plan(
            "UsagePlan",
            throttle=apigw.ThrottleSettings(rate_limit=s.api_rate_limit_rps, burst_limit=s.api_burst_limit),
            quota=apigw.QuotaSettings(limit=s.api_quota_per_day, period=apigw.Period.DAY),
            api_stages=[apigw.UsagePlanPerApiStage(api=self.rest_api, stage=self.rest_api.deployment_stage)],
        )
        self.usage_plan.add_api_key(self.api_key)
        for error in gateway_errors(quota_per_day=s.api_quota_per_day):
            self.rest_api.add_gateway_response(
                error.response_type.title().replace("_", ""),
                type=apigw.ResponseType.of(error.response_type),
                status_code=str(error.status) if error.status is not None else None,
                # Static header values are single-quoted in gateway responses.
                response_headers={name: f"'{value}'" for name, value in error.headers.items()} or None,
                templates={"application/json": error.template()},
            )
        acknowledge(
            self.rest_api,
            "AwsSolutions-APIG2",
            "The Lambda validates every request and answers OpenAI-shaped errors naming the field; an API "
            "Gateway model would answer a less useful, non-OpenAI error first.",
        )
        acknowledge(
            self.rest_api,
            "AwsSolutions-APIG3",
            "WAF is optional ($5+/month per web ACL): access is already limited by API key, usage-plan "
            "throttling, a stage throttle and a daily quota. The next step against floods from many "
            "addresses is a web ACL with rate-based rules on the stage.",
        )
        acknowledge(
            self.rest_api,
            "AwsSolutions-COG4",
            "API-key auth is the design (OpenAI clients send a key, not a Cognito token).",
        )
        if s.apigw_cloudwatch_role:
            acknowledge(
                self.rest_api,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
                "API Gateway's account-level logging role uses the AWS managed "
                "AmazonAPIGatewayPushToCloudWatchLogs policy, the documented policy for that role.",
            )

    def _add_method(self, resource: apigw.IResource, integration: apigw.Integration) -> None:
        resource.add_method(
            "ANY",
            integration,
            api_key_required=True,
            authorizer=self.authorizer.authorizer,
            authorization_type=apigw.AuthorizationType.CUSTOM,
        )

    @staticmethod
    def _integration(handler: lambda_.IFunction, timeout: Duration) -> apigw.LambdaIntegration:
        return apigw.LambdaIntegration(
            handler,
            proxy=True,
            # No permission for the console's test-invoke-stage: nothing here uses it.
            allow_test_invoke=False,
            response_transfer_mode=apigw.ResponseTransferMode.STREAM,
            timeout=timeout,
        )

    @property
    def openai_base_url(self) -> str:
        return f"{self.rest_api.url}v1"


class ApiStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: Settings,
        serving: ServingEndpoint,
        artifacts: ModelArtifacts,
        env: Environment | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(scope, id, env=env, description=description)
        self.forwarder = Forwarder(self, "Forwarder", settings=settings, serving=serving, artifacts=artifacts)
        self.api = Api(self, "Api", settings=settings, handler=self.forwarder.function)
        CfnOutput(self, "OpenAIBaseUrl", value=self.api.openai_base_url, description="base_url for OpenAI clients")
        CfnOutput(
            self,
            "GetApiKeyCommand",
            value=f"aws apigateway get-api-key --api-key {self.api.api_key.key_id} --include-value "
            f"--query value --output text --region {self.region}",
            description="Prints the API key; OpenAI clients pass it as api_key (Bearer), curl as x-api-key",
        )
        CfnOutput(self, "EndpointName", value=serving.endpoint_name, description="SageMaker endpoint")


def retention(days: int) -> logs.RetentionDays:
    """The RetentionDays member for a day count (settings accept only CloudWatch's values,
    which RetentionDays lists in the same ascending order)."""
    return dict(
        zip(RETENTION_DAYS, (m for m in logs.RetentionDays if m is not logs.RetentionDays.INFINITE), strict=True)
    )[days]
