"""The serving stack: the endpoint, its container, its role, its autoscaling."""

import json
from pathlib import Path

import pytest
from aws_cdk.assertions import Annotations, Match

from ownllm import engines, gpus
from ownllm.images import engine_image
from stacks.serving import endpoint_name


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


TGI_MULTI_GPU = (("engine", "tgi"), ("instance_type", "ml.g5.12xlarge"), ("model_id", "Qwen/Qwen2.5-32B-Instruct"))


def test_a_multi_gpu_instance_shards_the_model_over_every_gpu_with_tgi(synth_app):
    """TGI 3.x always serves the Messages API: MESSAGES_API_ENABLED is read by no 3.3.6 code."""
    s = synth_app(TGI_MULTI_GPU)
    assert container(s.serving)["Environment"] == {
        "HF_MODEL_ID": "Qwen/Qwen2.5-32B-Instruct",
        "SM_NUM_GPUS": "4",
        "MAX_INPUT_TOKENS": "4096",
        "MAX_TOTAL_TOKENS": "8192",
        "MAX_BATCH_PREFILL_TOKENS": "4096",
        "MAX_CONCURRENT_REQUESTS": "128",
        "DTYPE": "bfloat16",
    }
    assert "huggingface-pytorch-tgi-inference" in json.dumps(s.serving.to_json()["Mappings"])


def test_tgi_synthesizes_with_one_warning_that_it_is_archived_upstream(synth_app):
    s = synth_app(TGI_MULTI_GPU)
    warnings = Annotations.from_stack(s.stacks.serving).find_warning("*", Match.any_value())
    assert [w.entry.data for w in warnings] == [f"{engines.ENGINE_NOTICES['tgi']} [ack: ownllm:engine-notice]"]
    assert Annotations.from_stack(synth_app().stacks.serving).find_warning("*", Match.any_value()) == []


def test_lmi_runs_vllm_in_async_mode_not_the_legacy_rolling_batch(synth_app):
    s = synth_app((("engine", "lmi"), ("instance_type", "ml.g6e.12xlarge")))
    assert container(s.serving)["Environment"] == {
        "HF_MODEL_ID": "Qwen/Qwen2.5-7B-Instruct",
        "OPTION_ASYNC_MODE": "true",
        "OPTION_ROLLING_BATCH": "disable",
        "OPTION_ENTRYPOINT": "djl_python.lmi_vllm.vllm_async_service",
        "OPTION_TENSOR_PARALLEL_DEGREE": "4",
        "OPTION_MAX_MODEL_LEN": "8192",
        "OPTION_MAX_ROLLING_BATCH_SIZE": "64",
        "OPTION_DTYPE": "bf16",
    }


@pytest.mark.parametrize(
    "engine, ami",
    [
        ("vllm", "al2023-ami-sagemaker-inference-gpu-4-1"),  # vllm:0.30.0-...-cu130: CUDA 13.0 needs driver 580
        ("lmi", "al2023-ami-sagemaker-inference-gpu-4-1"),  # djl-inference:0.38.0-lmi29.0.0-cu130
        ("tgi", "al2-ami-sagemaker-inference-gpu-3-1"),  # ...-tgi3.3.6-gpu-py311-cu124: driver 550
    ],
)
def test_the_variant_runs_on_a_host_ami_whose_driver_runs_the_images_cuda_version(synth_app, engine, ami):
    s = synth_app((("engine", engine),))
    assert variant(s.serving)["InferenceAmiVersion"] == ami


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
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["llama/8b/", "llama/8b/*"]}}


def test_s3_weights_given_without_a_trailing_slash_are_still_a_prefix_ending_in_one(synth_app):
    s = synth_app((("model_id", "s3://my-weights/llama"), ("model_size_b", 8)))
    assert container(s.serving)["ModelDataSource"]["S3DataSource"]["S3Uri"] == "s3://my-weights/llama/"


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
                    # Settings.autoscaling_target: the performance model's, unset in cdk.json.
                    "TargetValue": default.settings.autoscaling_target,
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


def scheduled(s) -> dict[str, str]:
    [target] = s.serving.find_resources("AWS::ApplicationAutoScaling::ScalableTarget").values()
    return {a["ScheduledActionName"].split("/")[-1]: a["Schedule"] for a in target["Properties"]["ScheduledActions"]}


def test_active_hours_ending_at_midnight_close_at_zero_hours_on_the_next_day(synth_app):
    """Friday 08:00-24:00 must close Saturday 00:00; `0 on MON-FRI` would never close Friday."""
    s = synth_app((("active_hours", "08:00-24:00"),))
    assert sorted(scheduled(s).values()) == [
        "cron(0 0 ? * TUE,WED,THU,FRI,SAT *)",
        "cron(0 8 ? * MON,TUE,WED,THU,FRI *)",
    ]


def adapters_dir(root: Path, ranks: dict[str, dict]) -> str:
    for name, config in ranks.items():
        adapter = root / "adapters" / name
        adapter.mkdir(parents=True)
        (adapter / "adapter_config.json").write_text(json.dumps(config))
    return str(root)


def test_lora_adapters_are_uploaded_and_enabled_in_the_container(tmp_path, synth_app):
    root = adapters_dir(tmp_path, {"support-bot": {"r": 8}})
    (tmp_path / "serving.json").write_text('{"vllm": {"SM_VLLM_GPU_MEMORY_UTILIZATION": 0.85}}')
    s = synth_app(artifacts_dir=root)
    env = container(s.serving)["Environment"]
    assert env["SM_VLLM_ENABLE_LORA"] == "true"
    assert env["SM_VLLM_LORA_MODULES"] == '[{"name":"support-bot","path":"/opt/ml/model/adapters/support-bot"}]'
    assert (env["SM_VLLM_MAX_LORAS"], env["SM_VLLM_MAX_LORA_RANK"]) == ("1", "8")
    assert env["SM_VLLM_GPU_MEMORY_UTILIZATION"] == "0.85"  # serving.json overrides the default
    assert container(s.serving)["ModelDataSource"]["S3DataSource"]["S3DataType"] == "S3Prefix"
    s.serving.resource_count_is("Custom::CDKBucketDeployment", 1)
    s.serving.has_resource_properties("AWS::S3::Bucket", {"BucketEncryption": Match.any_value()})
    s.api.has_resource_properties(
        "AWS::Lambda::Function", {"Environment": {"Variables": Match.object_like({"ADAPTERS": "support-bot"})}}
    )


def test_three_adapters_reach_vllm_as_three_json_modules_with_room_for_the_largest_rank(tmp_path, synth_app):
    """vLLM splits a `name=path` token on '=': three pairs in one token crashed it. The DLC's
    entrypoint gives each element of a JSON array its own token. Ranks 8, 16 and 24 (a
    rank_pattern entry) need --max-lora-rank 32, the next rank vLLM accepts."""
    root = adapters_dir(
        tmp_path, {"alpha": {"r": 8}, "beta": {"r": 16}, "gamma": {"r": 16, "rank_pattern": {"q_proj": 24}}}
    )
    env = container(synth_app(artifacts_dir=root).serving)["Environment"]
    assert env["SM_VLLM_LORA_MODULES"] == (
        '[{"name":"alpha","path":"/opt/ml/model/adapters/alpha"},'
        '{"name":"beta","path":"/opt/ml/model/adapters/beta"},'
        '{"name":"gamma","path":"/opt/ml/model/adapters/gamma"}]'
    )
    assert [m["name"] for m in json.loads(env["SM_VLLM_LORA_MODULES"])] == ["alpha", "beta", "gamma"]
    assert (env["SM_VLLM_MAX_LORAS"], env["SM_VLLM_MAX_LORA_RANK"]) == ("3", "32")


def test_lmi_adapters_get_lora_enabled_with_the_largest_rank(tmp_path, synth_app):
    root = adapters_dir(tmp_path, {"alpha": {"r": 64}, "beta": {"r": 16}})
    env = container(synth_app((("engine", "lmi"),), artifacts_dir=root).serving)["Environment"]
    assert {k: env[k] for k in ("OPTION_ENABLE_LORA", "OPTION_MAX_LORAS", "OPTION_MAX_LORA_RANK")} == {
        "OPTION_ENABLE_LORA": "true",
        "OPTION_MAX_LORAS": "2",
        "OPTION_MAX_LORA_RANK": "64",
    }


def test_adapters_are_model_data_under_a_prefix_ending_in_a_slash_that_the_role_may_list(tmp_path, synth_app):
    """SageMaker lists the model-data prefix before copying it; a bucket-root URI without a
    trailing slash and a listing limited to `adapters/*` denied that download."""
    s = synth_app(artifacts_dir=adapters_dir(tmp_path, {"support-bot": {"r": 8}}))
    [bucket_id] = s.serving.find_resources("AWS::S3::Bucket")
    assert container(s.serving)["ModelDataSource"]["S3DataSource"] == {
        "S3Uri": {"Fn::Join": ["", ["s3://", {"Ref": bucket_id}, "/model/"]]},
        "S3DataType": "S3Prefix",
        "CompressionType": "None",
    }
    s.serving.has_resource_properties("Custom::CDKBucketDeployment", {"DestinationBucketKeyPrefix": "model/adapters/"})
    statements = role_statements(s.serving, "LlmExecutionRole")
    [listing] = [st for st in statements if st["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["model/", "model/*"]}}
    assert listing["Resource"] == {"Fn::GetAtt": [bucket_id, "Arn"]}
    [read] = [st for st in statements if st["Action"] == "s3:GetObject"]
    assert read["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/model/*"]]}


def test_an_adapter_whose_rank_vllm_cannot_serve_is_refused_by_name(tmp_path):
    from ownllm.artifacts import load_artifacts
    from ownllm.settings import SettingsError

    adapters_dir(tmp_path, {"huge": {"r": 1024}, "odd": {"r": "8"}})
    with pytest.raises(SettingsError) as caught:
        load_artifacts(tmp_path)
    assert caught.value.problems == [
        "model_artifacts/adapters/huge/adapter_config.json: rank 1024 is above the largest LoRA rank vLLM serves (512)",
        "model_artifacts/adapters/odd/adapter_config.json: r='8' (and any rank_pattern values) must be positive whole numbers",
    ]


def test_an_adapter_config_without_r_has_pefts_default_rank(tmp_path):
    from ownllm.artifacts import load_artifacts

    adapters_dir(tmp_path, {"plain": {"peft_type": "LORA"}, "wide": {"r": 4, "rank_pattern": {"v_proj": 48}}})
    artifacts = load_artifacts(tmp_path)
    assert (artifacts.adapter_ranks, artifacts.max_lora_rank) == ({"plain": 8, "wide": 48}, 48)
    assert engines.lora_rank_for(48) == 64 and engines.lora_rank_for(8) == 8 and engines.lora_rank_for(2) == 8


def endpoint_resources(t) -> tuple[str, dict, str, dict]:
    [(endpoint_id, endpoint)] = t.find_resources("AWS::SageMaker::Endpoint").items()
    [(target_id, target)] = t.find_resources("AWS::ApplicationAutoScaling::ScalableTarget").items()
    return endpoint_id, endpoint["Properties"], target_id, target["Properties"]


def test_changing_the_instance_type_replaces_the_endpoint_and_its_scalable_target_together(synth_app):
    """SageMaker refuses to update the instance type of an auto-scaled variant in place; a new
    endpoint name makes CloudFormation create a new endpoint (and, through the ResourceId, a
    new scalable target on it) and delete the old pair in cleanup. See endpoint_name()."""
    before, after = synth_app(), synth_app((("instance_type", "ml.g6e.2xlarge"),))
    endpoint_id, old, target_id, old_target = endpoint_resources(before.serving)
    _, new, _, new_target = endpoint_resources(after.serving)
    assert (old["EndpointName"], new["EndpointName"]) == ("ownllm-llm", "ownllm-llm-g6e-2xlarge")
    # CloudFormation names the config, so any variant change replaces it; the endpoint takes the new one.
    [(config_id, config)] = after.serving.find_resources("AWS::SageMaker::EndpointConfig").items()
    assert "EndpointConfigName" not in config["Properties"]
    assert new["EndpointConfigName"] == {"Fn::GetAtt": [config_id, "EndpointConfigName"]}
    for target in (old_target, new_target):
        assert target["ResourceId"] == {
            "Fn::Join": ["", ["endpoint/", {"Fn::GetAtt": [endpoint_id, "EndpointName"]}, "/variant/AllTraffic"]]
        }
    # The API and the alarms follow the name, so they move to the new endpoint on their next deploy.
    after.api.has_resource_properties(
        "AWS::Lambda::Function",
        {"Environment": {"Variables": Match.object_like({"ENDPOINT_NAME": "ownllm-llm-g6e-2xlarge"})}},
    )
    # The scaling policy hangs off the target, so it is replaced with it.
    after.serving.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy", {"ScalingTargetId": {"Ref": target_id}}
    )


def test_every_supported_instance_type_gets_its_own_endpoint_name_within_sagemakers_limits():
    names = {t: endpoint_name("OwnLlm", t) for t in gpus.gpu_table()}
    assert len(set(names.values())) == len(names)
    assert names["ml.g5.2xlarge"] == "ownllm-llm"  # the default type keeps the name deployed before
    assert names["ml.p4de.24xlarge"] == "ownllm-llm-p4de-24xlarge"
    longest = endpoint_name("A" * 31, "ml.p4de.24xlarge")
    assert len(longest) <= 63 and all(c.isalnum() or c == "-" for c in longest)


def test_a_gated_models_hub_token_is_a_deploy_time_secret_reference(synth_app):
    s = synth_app((("hf_token_secret_name", "hf/token"),))
    assert container(s.serving)["Environment"]["HF_TOKEN"] == "{{resolve:secretsmanager:hf/token:SecretString}}"
    assert "HF_TOKEN" not in container(synth_app().serving)["Environment"]
