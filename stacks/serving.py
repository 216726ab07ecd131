"""The serving stack: a SageMaker real-time endpoint running an open LLM, with autoscaling."""

from __future__ import annotations

from typing import Any

from aws_cdk import (
    Annotations,
    ArnFormat,
    Aws,
    CfnElement,
    CfnMapping,
    Duration,
    Fn,
    RemovalPolicy,
    Stack,
    TimeZone,
    Token,
)
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from ownllm import engines, gpus
from ownllm.artifacts import ModelArtifacts
from ownllm.images import engine_image, engine_images
from ownllm.naming import VARIANT, deployed_names, endpoint_name
from ownllm.schedule import window_moments
from ownllm.settings import Settings
from stacks.nag import acknowledge, arn_placeholder, partition_and_region

# LLM containers download tens of GB of weights and compile kernels before they answer the
# health check; SageMaker's allowed range for both is 60-3600 s.
STARTUP_HEALTH_CHECK_S = 1800
MODEL_DOWNLOAD_TIMEOUT_S = 3600
# Host memory one model copy reserves on a scale-to-zero endpoint; the weights live in GPU
# memory. CreateInferenceComponent requires the figure and places copies by it.
COMPONENT_HOST_MEMORY_MB = 1024
COPY_COUNT_DIMENSION = "sagemaker:inference-component:DesiredCopyCount"
# Packaged adapters sit under this key prefix, so SageMaker copies s3://<bucket>/model/ to
# /opt/ml/model and they appear at /opt/ml/model/adapters/<name>.
MODEL_DATA_PREFIX = "model"


class EngineImage(Construct):
    """The engine image for the stack's region, from the committed image table: a concrete
    URI when the region is known at synth time, else a region map that CloudFormation
    resolves on deploy. Also the host AMI the image needs (`inference_ami_version`)."""

    def __init__(self, scope: Construct, id: str, *, engine: str) -> None:
        super().__init__(scope, id)
        table = engine_images(engine)
        self.inference_ami_version = table.inference_ami_version
        self.repository_name = table.repository
        region = Stack.of(self).region
        account: str
        if not Token.is_unresolved(region):
            ref = engine_image(engine, region)
            self.uri, account = ref.uri, ref.account
        else:
            mapping = CfnMapping(
                self,
                "ByRegion",
                mapping={r: {"uri": i.uri, "account": i.account} for r, i in table.images.items()},
            )
            self.uri = mapping.find_in_map(Aws.REGION, "uri")
            account = mapping.find_in_map(Aws.REGION, "account")
        self.repository = ecr.Repository.from_repository_attributes(
            self,
            "Repository",
            repository_arn=Stack.of(self).format_arn(
                service="ecr", account=account, resource="repository", resource_name=self.repository_name
            ),
            repository_name=self.repository_name,
        )


class ServingEndpoint(Construct):
    """Model + EndpointConfig + Endpoint with a least-privilege execution role.

    Exposes `endpoint_name`, `endpoint_arn` and `grant_invoke()` for the API.
    """

    def __init__(self, scope: Construct, id: str, *, settings: Settings, artifacts: ModelArtifacts) -> None:
        super().__init__(scope, id)
        s = settings
        stack = Stack.of(self)
        self.settings = s
        self.endpoint_name = endpoint_name(s.stack_prefix, s.instance_type)
        self.endpoint_arn = stack.format_arn(service="sagemaker", resource="endpoint", resource_name=self.endpoint_name)

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Runs the LLM container: pulls the engine image, reads model data, writes its logs.",
        )
        image = EngineImage(self, "Image", engine=s.engine)
        image.repository.grant_pull(self.role)
        # The endpoint's container logs go to /aws/sagemaker/Endpoints/<endpoint name>.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name=f"/aws/sagemaker/Endpoints/{self.endpoint_name}:*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        # SageMaker publishes GPU/CPU utilisation through the container's metrics agent.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/Endpoints", "AWS/SageMaker"]}},
            )
        )

        model_data_uri, self.artifacts_bucket, deployment = self._model_data(s, artifacts)
        environment = engines.container_environment(s, artifacts)
        if s.hf_token_secret_name:
            # A dynamic reference: CloudFormation reads the token at deploy time; it is never in the template.
            environment["HF_TOKEN"] = f"{{{{resolve:secretsmanager:{s.hf_token_secret_name}:SecretString}}}}"

        container = sagemaker.CfnModel.ContainerDefinitionProperty(
            image=image.uri,
            environment=environment,
            model_data_source=(
                sagemaker.CfnModel.ModelDataSourceProperty(
                    s3_data_source=sagemaker.CfnModel.S3DataSourceProperty(
                        s3_uri=model_data_uri, s3_data_type="S3Prefix", compression_type="None"
                    )
                )
                if model_data_uri
                else None
            ),
        )
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=container,
            enable_network_isolation=False,
        )
        self.model.node.add_dependency(self.role)
        if deployment is not None:
            self.model.node.add_dependency(deployment)

        self.scale_to_zero = s.scale_to_zero
        self.inference_component_name = deployed_names(s.stack_prefix, s.instance_type).inference_component
        # Instance-store GPU families reject VolumeSizeInGB (and KmsKeyId below).
        volume = None if gpus.is_instance_store(s.instance_type) else 128
        if self.scale_to_zero:
            # Scale to zero needs an endpoint that hosts inference components: its variant names
            # no model, lets SageMaker add and remove instances (managed instance scaling, down
            # to 0) and routes to the least busy copy; the component places the model on it.
            # (SageMaker developer guide, endpoint-auto-scaling-zero-instances.)
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT,
                instance_type=s.instance_type,
                initial_instance_count=s.instance_count,
                managed_instance_scaling=sagemaker.CfnEndpointConfig.ManagedInstanceScalingProperty(
                    status="ENABLED", min_instance_count=0, max_instance_count=s.max_instances
                ),
                routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(
                    routing_strategy="LEAST_OUTSTANDING_REQUESTS"
                ),
                volume_size_in_gb=volume,
                inference_ami_version=image.inference_ami_version,
            )
            self.endpoint_config = sagemaker.CfnEndpointConfig(
                self, "EndpointConfig", production_variants=[variant], execution_role_arn=self.role.role_arn
            )
        else:
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT,
                model_name=self.model.attr_model_name,
                instance_type=s.instance_type,
                initial_instance_count=s.instance_count,
                initial_variant_weight=1.0,
                container_startup_health_check_timeout_in_seconds=STARTUP_HEALTH_CHECK_S,
                model_data_download_timeout_in_seconds=MODEL_DOWNLOAD_TIMEOUT_S,
                volume_size_in_gb=volume,
                # A host AMI whose NVIDIA driver runs the image's CUDA version (ownllm/images.py).
                inference_ami_version=image.inference_ami_version,
            )
            self.endpoint_config = sagemaker.CfnEndpointConfig(self, "EndpointConfig", production_variants=[variant])
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=self.endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
        )
        self.inference_component: sagemaker.CfnInferenceComponent | None = None
        if self.scale_to_zero:
            self.inference_component = sagemaker.CfnInferenceComponent(
                self,
                "Component",
                endpoint_name=self.endpoint.attr_endpoint_name,
                variant_name=VARIANT,
                inference_component_name=self.inference_component_name,
                specification=sagemaker.CfnInferenceComponent.InferenceComponentSpecificationProperty(
                    model_name=self.model.attr_model_name,
                    compute_resource_requirements=sagemaker.CfnInferenceComponent.InferenceComponentComputeResourceRequirementsProperty(
                        # One copy takes every GPU of an instance: the engine's tensor-parallel degree.
                        number_of_accelerator_devices_required=s.gpu_count,
                        min_memory_required_in_mb=COMPONENT_HOST_MEMORY_MB,
                    ),
                    startup_parameters=sagemaker.CfnInferenceComponent.InferenceComponentStartupParametersProperty(
                        container_startup_health_check_timeout_in_seconds=STARTUP_HEALTH_CHECK_S,
                        model_data_download_timeout_in_seconds=MODEL_DOWNLOAD_TIMEOUT_S,
                    ),
                ),
                # A stack update resets the copy count to this: one copy, which may then scale in.
                runtime_config=sagemaker.CfnInferenceComponent.InferenceComponentRuntimeConfigProperty(copy_count=1),
            )
            self.inference_component.node.add_dependency(self.endpoint)

    def _model_data(
        self, s: Settings, artifacts: ModelArtifacts
    ) -> tuple[str | None, s3.Bucket | None, s3deploy.BucketDeployment | None]:
        """Where /opt/ml/model comes from: the user's s3:// weights, or the packaged adapters.

        The URI is always a key prefix ending in '/' ("the key name prefix ... always ends
        with a forward slash": SageMaker API reference, S3DataSource / S3ModelDataSource).
        """
        if s.model_from_s3:
            bucket_name, _, prefix = s.model_id[len("s3://") :].partition("/")
            bucket = s3.Bucket.from_bucket_name(self, "WeightsBucket", bucket_name)
            self._grant_read_prefix(bucket, prefix.strip("/"))
            uri = s.model_id if s.model_id.endswith("/") else s.model_id + "/"
            return uri, None, None
        if not artifacts.adapters:
            return None, None, None
        bucket = s3.Bucket(
            self,
            "ArtifactsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            removal_policy=RemovalPolicy.DESTROY,
            auto_delete_objects=True,
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "Holds only the LoRA adapters this stack uploads from model_artifacts/; writes come from CloudFormation, so server access logs add cost without audit value.",
        )
        deployment = s3deploy.BucketDeployment(
            self,
            "Adapters",
            sources=[s3deploy.Source.asset(str(artifacts.adapters_dir))],
            destination_bucket=bucket,
            destination_key_prefix=f"{MODEL_DATA_PREFIX}/{engines.ADAPTERS_SUBDIR}/",
            prune=True,
            memory_limit=512,
        )
        self._grant_read_prefix(bucket, MODEL_DATA_PREFIX)
        self._acknowledge_bucket_deployment(bucket)
        return bucket.s3_url_for_object(f"{MODEL_DATA_PREFIX}/"), bucket, deployment

    def _acknowledge_bucket_deployment(self, bucket: s3.Bucket) -> None:
        """The BucketDeployment's singleton Lambda is CDK's own construct; its grants come from
        s3deploy and cannot be narrowed from here."""
        stack = Stack.of(self)
        provider = next(c for c in stack.node.children if c.node.id.startswith("Custom::CDKBucketDeployment"))
        partition, _ = partition_and_region(self)
        bucket_resource = bucket.node.default_child
        assert isinstance(bucket_resource, CfnElement), "an s3.Bucket's default child is its CfnBucket"
        acknowledge(
            provider,
            [
                f"AwsSolutions-IAM5[Action::{a}]"
                for a in ("s3:Abort*", "s3:DeleteObject*", "s3:GetBucket*", "s3:GetObject*", "s3:List*")
            ]
            + [
                f"AwsSolutions-IAM5[Resource::{arn_placeholder(bucket_resource)}/*]",
                f"AwsSolutions-IAM5[Resource::arn:{partition}:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*]",
            ],
            "CDK's BucketDeployment copies the adapter asset into the artifacts bucket; its role is scoped by "
            "s3deploy to the CDK asset bucket and this bucket.",
        )
        acknowledge(
            provider,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "CDK's BucketDeployment provider Lambda writes its logs with the basic execution policy.",
        )
        acknowledge(provider, "AwsSolutions-L1", "CDK's BucketDeployment provider pins its own runtime.")

    def _grant_read_prefix(self, bucket: s3.IBucket, prefix: str) -> None:
        """Read the objects under one prefix (and list only that prefix): what SageMaker needs
        to copy model data to /opt/ml/model.

        SageMaker lists the bucket with the model data's key prefix (`prefix/`), then keys
        below it; both are allowed, nothing else. A bucket-root prefix allows any listing.
        """
        objects = bucket.arn_for_objects(f"{prefix}/*" if prefix else "*")
        self.role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[objects]))
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{prefix}/", f"{prefix}/*"] if prefix else ["*"]}},
            )
        )
        if bucket.node.scope is self and isinstance(bucket.node.default_child, CfnElement):
            shown = f"{arn_placeholder(bucket.node.default_child)}/{prefix}/*"
        else:
            shown = f"arn:{partition_and_region(self)[0]}:s3:::{bucket.bucket_name}/{prefix + '/' if prefix else ''}*"
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::{shown}]",
            "SageMaker copies every object under the one model-data prefix; object names are not known in advance.",
        )

    @property
    def inference_component_arn(self) -> str:
        return Stack.of(self).format_arn(
            service="sagemaker", resource="inference-component", resource_name=self.inference_component_name
        )

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow exactly sagemaker:InvokeEndpoint on this endpoint (and on its inference component,
        a resource type the action also takes, when the model runs as one)."""
        arns = [self.endpoint_arn] + ([self.inference_component_arn] if self.scale_to_zero else [])
        return iam.Grant.add_to_principal(grantee=grantee, actions=["sagemaker:InvokeEndpoint"], resource_arns=arns)


class EndpointAutoscaling(Construct):
    """Target tracking on concurrent requests per instance (10 s, high-resolution metric),
    plus optional business-hours scheduled actions."""

    def __init__(self, scope: Construct, id: str, *, endpoint: ServingEndpoint, settings: Settings) -> None:
        super().__init__(scope, id)
        s = settings
        resource_id = Fn.join("", ["endpoint/", endpoint.endpoint.attr_endpoint_name, f"/variant/{VARIANT}"])
        self.target = appscaling.ScalableTarget(
            self,
            "Target",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=resource_id,
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=s.min_instances,
            max_capacity=s.max_instances,
            role=_autoscaling_service_linked_role(self),
        )
        if s.max_instances > s.min_instances:
            self.target.scale_to_track_metric(
                "ConcurrencyTracking",
                target_value=float(s.autoscaling_target),
                predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_CONCURRENT_REQUESTS_PER_MODEL_HIGH_RESOLUTION,
                scale_in_cooldown=Duration.minutes(10),  # new instances take minutes to load weights
                scale_out_cooldown=Duration.minutes(2),
            )
        # An instance-backed variant cannot run on zero instances: off hours keep one.
        _schedule_active_hours(self.target, s, inside=(s.min_instances, s.max_instances), outside=(1, 1))


class ComponentAutoscaling(Construct):
    """Copies of a scale-to-zero model: target tracking on concurrent requests per copy takes it
    down to zero copies when idle (and managed instance scaling then releases the instance); an
    alarm on NoCapacityInvocationFailures, the metric a refused request emits, adds the first
    copy back, since target tracking cannot leave zero on its own. With active_hours, the window
    keeps one copy warm and the floor drops to zero outside it.
    (SageMaker developer guide, endpoint-auto-scaling-zero-instances; AWS ML blog, 2024-12-03.)"""

    def __init__(self, scope: Construct, id: str, *, endpoint: ServingEndpoint, settings: Settings) -> None:
        super().__init__(scope, id)
        s = settings
        component = endpoint.inference_component
        if component is None:
            raise ValueError("ComponentAutoscaling needs an endpoint that hosts an inference component")
        self.target = appscaling.ScalableTarget(
            self,
            "Target",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"inference-component/{endpoint.inference_component_name}",
            scalable_dimension=COPY_COUNT_DIMENSION,
            min_capacity=0,
            max_capacity=s.max_instances,
            role=_autoscaling_service_linked_role(self),
        )
        self.target.node.add_dependency(component)
        self.target.scale_to_track_metric(
            "ConcurrencyTracking",
            target_value=float(s.autoscaling_target),
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_INFERENCE_COMPONENT_CONCURRENT_REQUESTS_PER_COPY_HIGH_RESOLUTION,
            scale_in_cooldown=Duration.minutes(10),
            scale_out_cooldown=Duration.minutes(2),
        )
        wake = appscaling.StepScalingAction(
            self,
            "WakeFromZero",
            scaling_target=self.target,
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            cooldown=Duration.minutes(2),
        )
        wake.add_adjustment(adjustment=1, lower_bound=0)
        self.no_capacity_alarm = cloudwatch.Alarm(
            self,
            "NoCapacity",
            alarm_description="A request found no model copy: add one (wakes the endpoint from zero).",
            metric=cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name="NoCapacityInvocationFailures",
                dimensions_map={"InferenceComponentName": endpoint.inference_component_name},
                statistic="Maximum",
                period=Duration.minutes(1),
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.no_capacity_alarm.add_alarm_action(cw_actions.ApplicationScalingAction(wake))
        _schedule_active_hours(self.target, s, inside=(1, s.max_instances), outside=(0, s.max_instances))


def _schedule_active_hours(
    target: appscaling.ScalableTarget, s: Settings, *, inside: tuple[int, int], outside: tuple[int, int]
) -> None:
    """(min, max) capacity through active_hours and outside them, when the settings have a window.
    A window ending at 24:00 or past midnight closes on the next day (ownllm/schedule.py)."""
    schedule = s.schedule
    if not schedule:
        return
    opening, closing = window_moments(schedule.start_hour, schedule.end_hour, schedule.days)
    for name, moment, (low, high) in (("StartOfActiveHours", opening, inside), ("EndOfActiveHours", closing, outside)):
        target.scale_on_schedule(
            name,
            schedule=appscaling.Schedule.cron(hour=str(moment.hour), minute="0", week_day=moment.week_day),
            min_capacity=low,
            max_capacity=high,
            time_zone=TimeZone.of(schedule.timezone),
        )


def _autoscaling_service_linked_role(scope: Construct) -> iam.IRole:
    """Application Auto Scaling's service-linked role for SageMaker (created by AWS on first use)."""
    return iam.Role.from_role_arn(
        scope,
        "ServiceLinkedRole",
        Stack.of(scope).format_arn(
            service="iam",
            region="",
            resource="role",
            resource_name="aws-service-role/sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
        ),
    )


class ServingStack(Stack):
    def __init__(
        self, scope: Construct, id: str, *, settings: Settings, artifacts: ModelArtifacts, **kwargs: Any
    ) -> None:
        super().__init__(scope, id, **kwargs)
        notice = engines.ENGINE_NOTICES.get(settings.engine)
        if notice:
            Annotations.of(self).add_warning_v2("ownllm:engine-notice", notice)
        self.serving = ServingEndpoint(self, "Llm", settings=settings, artifacts=artifacts)
        self.autoscaling: EndpointAutoscaling | ComponentAutoscaling = (
            ComponentAutoscaling(self, "Autoscaling", endpoint=self.serving, settings=settings)
            if settings.scale_to_zero
            else EndpointAutoscaling(self, "Autoscaling", endpoint=self.serving, settings=settings)
        )
        role = self.serving.role
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken only exists on '*'; cloudwatch:PutMetricData has no resource ARNs and is "
            "limited to SageMaker's namespaces by a condition.",
        )
        partition, region = partition_and_region(self)
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::arn:{partition}:logs:{region}:<AWS::AccountId>:log-group:"
            f"/aws/sagemaker/Endpoints/{self.serving.endpoint_name}:*]",
            "The container writes log streams, named at run time, in its one endpoint log group only.",
        )
