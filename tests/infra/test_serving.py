"""The serving stack: the endpoint, its container, its role, its autoscaling."""

import json

from aws_cdk.assertions import Match

from ownllm.images import engine_image


def variant(t) -> dict:
    [config] = t.find_resources("AWS::SageMaker::EndpointConfig").values()
    [v] = config["Properties"]["ProductionVariants"]
    return v


def container(t) -> dict:
    [model] = t.find_resources("AWS::SageMaker::Model").values()
    return model["Properties"]["PrimaryContainer"]


def role_statements(t, logical_prefix: str) -> list[dict]:
    policies = t.find_resources("AWS::IAM::Policy")
    return [
        s
        for lid, p in policies.items()
        if lid.startswith(logical_prefix)
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_endpoint_runs_the_configured_instance_type_and_count(default):
    v = variant(default.serving)
    assert (v["InstanceType"], v["InitialInstanceCount"], v["VariantName"]) == ("ml.g5.2xlarge", 1, "AllTraffic")
    default.serving.has_resource_properties(
        "AWS::SageMaker::Endpoint",
        {"EndpointName": "ownllm-llm", "EndpointConfigName": {"Fn::GetAtt": [Match.any_value(), "EndpointConfigName"]}},
    )


def test_llm_containers_get_long_startup_and_download_timeouts(default):
    v = variant(default.serving)
    assert v["ContainerStartupHealthCheckTimeoutInSeconds"] >= 900
    assert v["ModelDataDownloadTimeoutInSeconds"] >= 1800
    assert v["ContainerStartupHealthCheckTimeoutInSeconds"] <= 3600 and v["ModelDataDownloadTimeoutInSeconds"] <= 3600


def test_instance_store_gpu_families_get_no_volume_size_or_kms_key(default):
    v = variant(default.serving)
    assert "VolumeSizeInGB" not in v
    [config] = default.serving.find_resources("AWS::SageMaker::EndpointConfig").values()
    assert "KmsKeyId" not in config["Properties"]


def test_env_agnostic_stacks_pick_the_engine_image_from_a_region_map(default):
    [(mapping_id, mapping)] = default.serving.to_json()["Mappings"].items()
    assert container(default.serving)["Image"] == {"Fn::FindInMap": [mapping_id, {"Ref": "AWS::Region"}, "uri"]}
    assert mapping["eu-west-1"]["uri"] == engine_image("vllm", "eu-west-1").uri
    assert mapping["us-east-1"]["uri"].startswith("763104351884.dkr.ecr.us-east-1.amazonaws.com/vllm:0.30.0")


def test_a_stack_with_a_known_region_gets_that_regions_image(synth_app):
    s = synth_app((("region", "eu-west-1"),))
    assert container(s.serving)["Image"] == engine_image("vllm", "eu-west-1").uri


def test_vllm_container_serves_the_model_with_the_configured_limits(default):
    env = container(default.serving)["Environment"]
    assert env["SM_VLLM_MODEL"] == "Qwen/Qwen2.5-7B-Instruct"
    assert env["SM_VLLM_TENSOR_PARALLEL_SIZE"] == "1"
    assert env["SM_VLLM_MAX_MODEL_LEN"] == "8192"
    assert env["SM_VLLM_MAX_NUM_SEQS"] == "64"


def test_a_multi_gpu_instance_shards_the_model_over_every_gpu_with_tgi(synth_app):
    s = synth_app((("engine", "tgi"), ("instance_type", "ml.g5.12xlarge"), ("model_id", "Qwen/Qwen2.5-32B-Instruct")))
    env = container(s.serving)["Environment"]
    assert env["SM_NUM_GPUS"] == "4"
    assert env["HF_MODEL_ID"] == "Qwen/Qwen2.5-32B-Instruct"
    assert (env["MAX_INPUT_TOKENS"], env["MAX_TOTAL_TOKENS"]) == ("4096", "8192")
    assert env["MESSAGES_API_ENABLED"] == "true"
    assert "huggingface-pytorch-tgi-inference" in json.dumps(s.serving.to_json()["Mappings"])


def test_lmi_container_uses_tensor_parallel_degree_and_rolling_batch(synth_app):
    s = synth_app((("engine", "lmi"), ("instance_type", "ml.g6e.12xlarge")))
    env = container(s.serving)["Environment"]
    assert env["OPTION_TENSOR_PARALLEL_DEGREE"] == "4"
    assert env["OPTION_MAX_ROLLING_BATCH_SIZE"] == "64"
    assert env["HF_MODEL_ID"] == "Qwen/Qwen2.5-7B-Instruct"


def test_weights_from_s3_are_mounted_and_only_that_prefix_is_readable(synth_app):
    s = synth_app((("model_id", "s3://my-weights/llama/8b/"), ("model_size_b", 8)))
    c = container(s.serving)
    assert c["ModelDataSource"]["S3DataSource"] == {
        "S3Uri": "s3://my-weights/llama/8b/",
        "S3DataType": "S3Prefix",
        "CompressionType": "None",
    }
    assert c["Environment"]["SM_VLLM_MODEL"] == "/opt/ml/model"
    statements = role_statements(s.serving, "LlmExecutionRole")
    [read] = [st for st in statements if st["Action"] == "s3:GetObject"]
    assert "my-weights/llama/8b/*" in json.dumps(read["Resource"])
    [listing] = [st for st in statements if st["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["llama/8b/*"]}}


def test_execution_role_pulls_only_the_engine_repository_and_writes_only_its_logs(default):
    statements = role_statements(default.serving, "LlmExecutionRole")
    pull = next(st for st in statements if "ecr:BatchGetImage" in st["Action"])
    assert "repository/vllm" in json.dumps(pull["Resource"])
    logs = next(st for st in statements if "logs:PutLogEvents" in st["Action"])
    assert "/aws/sagemaker/Endpoints/ownllm-llm:*" in json.dumps(logs["Resource"])
    default.serving.resource_properties_count_is("AWS::IAM::Role", {"ManagedPolicyArns": Match.any_value()}, 0)
    assert "AmazonSageMakerFullAccess" not in json.dumps(default.serving.to_json())


def test_autoscaling_tracks_high_resolution_concurrency_between_min_and_max(default):
    default.serving.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "MinCapacity": 1,
            "MaxCapacity": 2,
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "ResourceId": {"Fn::Join": ["", ["endpoint/", Match.any_value(), "/variant/AllTraffic"]]},
        },
    )
    default.serving.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "SageMakerVariantConcurrentRequestsPerModelHighResolution"
                    },
                    "TargetValue": 8,
                }
            ),
        },
    )


def test_a_fixed_size_endpoint_has_no_scaling_policy(synth_app):
    s = synth_app((("min_instances", 2), ("max_instances", 2), ("instance_count", 2)))
    s.serving.resource_count_is("AWS::ApplicationAutoScaling::ScalingPolicy", 0)
    assert variant(s.serving)["InitialInstanceCount"] == 2


def test_active_hours_add_scheduled_scale_up_and_scale_down(synth_app):
    s = synth_app((("active_hours", "08:00-20:00"), ("max_instances", 4), ("timezone", "Europe/Berlin")))
    [target] = s.serving.find_resources("AWS::ApplicationAutoScaling::ScalableTarget").values()
    actions = target["Properties"]["ScheduledActions"]
    start = next(a for a in target["Properties"]["ScheduledActions"] if "Start" in a["ScheduledActionName"])
    end = next(a for a in target["Properties"]["ScheduledActions"] if "End" in a["ScheduledActionName"])
    assert len(actions) == 2
    assert start["Schedule"] == "cron(0 8 ? * MON,TUE,WED,THU,FRI *)"
    assert start["ScalableTargetAction"] == {"MinCapacity": 1, "MaxCapacity": 4}
    assert end["Schedule"] == "cron(0 20 ? * MON,TUE,WED,THU,FRI *)"
    assert end["ScalableTargetAction"] == {"MinCapacity": 1, "MaxCapacity": 1}
    assert start["Timezone"] == "Europe/Berlin"


def test_lora_adapters_are_uploaded_and_enabled_in_the_container(tmp_path, synth_app):
    adapter = tmp_path / "adapters" / "support-bot"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text('{"r": 8}')
    (tmp_path / "serving.json").write_text('{"vllm": {"SM_VLLM_GPU_MEMORY_UTILIZATION": 0.85}}')
    s = synth_app(artifacts_dir=str(tmp_path))
    env = container(s.serving)["Environment"]
    assert env["SM_VLLM_ENABLE_LORA"] == "true"
    assert env["SM_VLLM_LORA_MODULES"] == "support-bot=/opt/ml/model/adapters/support-bot"
    assert env["SM_VLLM_GPU_MEMORY_UTILIZATION"] == "0.85"  # serving.json overrides the default
    assert container(s.serving)["ModelDataSource"]["S3DataSource"]["S3DataType"] == "S3Prefix"
    s.serving.resource_count_is("Custom::CDKBucketDeployment", 1)
    s.serving.has_resource_properties("AWS::S3::Bucket", {"BucketEncryption": Match.any_value()})
    s.api.has_resource_properties(
        "AWS::Lambda::Function", {"Environment": {"Variables": Match.object_like({"ADAPTERS": "support-bot"})}}
    )


def test_a_gated_models_hub_token_is_a_deploy_time_secret_reference(synth_app):
    s = synth_app((("hf_token_secret_name", "hf/token"),))
    assert container(s.serving)["Environment"]["HF_TOKEN"] == "{{resolve:secretsmanager:hf/token:SecretString}}"
    assert "HF_TOKEN" not in container(synth_app().serving)["Environment"]
