"""Engine images come from a committed table that the SageMaker SDK generates; synth reads
only the table, and each image names the host AMI its CUDA version needs."""

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import cfnlint.data.schemas
import pytest
from botocore.loaders import Loader

from ownllm import images
from ownllm.cli import main as ownllm_main
from ownllm.engines import ENGINE_IMAGES
from ownllm.settings import SettingsError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sdk_table() -> dict:
    """What `ownllm images refresh` would write now (every region, ~20 s of SDK calls)."""
    return images.build_table()


def test_the_committed_table_is_exactly_what_the_sdk_gives_for_the_pinned_versions(sdk_table):
    committed = json.loads(images.TABLE_PATH.read_text())
    assert committed == sdk_table, "ownllm/data/images.json is stale: run `ownllm images refresh`"
    assert committed["sagemaker_core"] == version("sagemaker-core") == "2.27.0"
    assert {e: (v["framework"], v["version"]) for e, v in committed["engines"].items()} == {
        e: (p.framework, p.version) for e, p in ENGINE_IMAGES.items()
    }


def test_every_commercial_region_of_the_sdk_is_in_the_table_and_no_other_partition(sdk_table):
    for engine, entry in images.load_table().items():
        pinned = ENGINE_IMAGES[engine]
        assert list(entry.images) == images.sdk_regions(pinned.framework, pinned.version)
        assert {"us-east-1", "us-west-2", "eu-west-1"} <= set(entry.images)
        assert not [r for r in entry.images if r.startswith(("cn-", "us-gov-"))]
        assert images.sdk_retrieve(engine, "eu-west-1") == entry.images["eu-west-1"]


@pytest.mark.parametrize(
    "engine, repository, tag, cuda, ami",
    [
        (
            "vllm",
            "vllm",
            "0.30.0-gpu-py312-cu130-ubuntu24.04-sagemaker",
            (13, 0),
            "al2023-ami-sagemaker-inference-gpu-4-1",
        ),
        ("lmi", "djl-inference", "0.38.0-lmi29.0.0-cu130", (13, 0), "al2023-ami-sagemaker-inference-gpu-4-1"),
        (
            "tgi",
            "huggingface-pytorch-tgi-inference",
            "2.7.0-tgi3.3.6-gpu-py311-cu124-ubuntu22.04",
            (12, 4),
            "al2-ami-sagemaker-inference-gpu-3-1",
        ),
    ],
)
def test_each_engine_image_names_its_cuda_version_and_the_host_ami_that_runs_it(engine, repository, tag, cuda, ami):
    entry = images.engine_images(engine)
    image = images.engine_image(engine, "us-west-2")
    assert (image.repository, image.tag) == (repository, tag)
    assert image.uri == f"763104351884.dkr.ecr.us-west-2.amazonaws.com/{repository}:{tag}"
    assert (entry.cuda, entry.inference_ami_version) == (cuda, ami)


@pytest.mark.parametrize(
    "cuda, ami",
    [
        ((12, 1), "al2-ami-sagemaker-inference-gpu-2-1"),
        ((12, 2), "al2-ami-sagemaker-inference-gpu-2-1"),
        ((12, 4), "al2-ami-sagemaker-inference-gpu-3-1"),
        ((12, 8), "al2023-ami-sagemaker-inference-gpu-4-1"),
        ((13, 0), "al2023-ami-sagemaker-inference-gpu-4-1"),
        (None, None),
    ],
)
def test_the_oldest_host_ami_whose_driver_runs_the_cuda_version_is_chosen(cuda, ami):
    assert images.inference_ami_for(cuda) == ami


def test_a_cuda_version_no_host_ami_runs_is_refused_with_the_newest_named():
    with pytest.raises(images.ImageTableError) as caught:
        images.inference_ami_for((13, 1))
    assert str(caught.value) == (
        "no SageMaker inference AMI runs CUDA 13.1; the newest known, al2023-ami-sagemaker-inference-gpu-4-1, "
        "runs CUDA 13.0 (update INFERENCE_AMIS in ownllm/images.py)"
    )


@pytest.mark.parametrize(
    "tag, cuda",
    [("0.30.0-gpu-py312-cu130-ubuntu24.04-sagemaker", (13, 0)), ("0.38.0-lmi29.0.0-cu130", (13, 0)), ("2.1-cpu", None)],
)
def test_the_cuda_version_is_read_from_the_image_tag(tag, cuda):
    assert images.cuda_version(tag) == cuda


def test_every_listed_host_ami_is_a_value_cloudformation_and_the_sagemaker_api_accept():
    schemas = Path(cfnlint.data.schemas.__path__[0])
    resource = json.loads((schemas / "providers" / "us-east-1.json").read_text())["AWS::SageMaker::EndpointConfig"]
    schema = json.loads((schemas / "resources" / f"{resource}.json").read_text())
    cfn_enum = schema["definitions"]["ProductionVariant"]["properties"]["InferenceAmiVersion"]["enum"]
    api_enum = Loader().load_service_model("sagemaker", "service-2")["shapes"]["ProductionVariantInferenceAmiVersion"]
    listed = [ami.name for ami in images.INFERENCE_AMIS]
    assert set(listed) <= set(cfn_enum)
    assert set(listed) <= set(api_enum["enum"])


def test_a_table_that_no_longer_matches_the_pinned_versions_is_refused_with_the_fix(tmp_path):
    table = json.loads(images.TABLE_PATH.read_text())
    table["engines"]["vllm"]["version"] = "0.29.0"
    stale = tmp_path / "images.json"
    stale.write_text(json.dumps(table))
    with pytest.raises(images.ImageTableError) as caught:
        images.load_table(stale)
    assert str(caught.value) == (
        "images.json: engine 'vllm' holds vllm 0.29.0, but ownllm/engines.py pins vllm 0.30.0; "
        "run `ownllm images refresh` and commit ownllm/data/images.json"
    )


def test_a_region_without_the_pinned_image_is_a_settings_error_naming_the_regions_with_it():
    with pytest.raises(SettingsError) as caught:
        images.engine_image("lmi", "me-west-1")
    [problem] = caught.value.problems
    assert problem.startswith(
        "region: the pinned lmi image is not published in 'me-west-1'; regions with it: af-south-1, ap-east-1,"
    )
    assert "me-west-1" in images.engine_image_map("vllm")


def test_synthesizing_the_serving_stack_never_imports_the_sagemaker_sdk():
    """The SDK import alone costs ~2 s; synth must read the committed table instead."""
    script = (
        "import sys\n"
        "from aws_cdk import App\n"
        "from ownllm.artifacts import ModelArtifacts\n"
        "from ownllm.settings import Settings\n"
        "from stacks.serving import ServingStack\n"
        "app = App()\n"
        "ServingStack(app, 'S', settings=Settings.from_context({}), artifacts=ModelArtifacts(__import__('pathlib').Path('.')))\n"
        "app.synth()\n"
        "print(sorted(m for m in sys.modules if m.startswith('sagemaker')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_images_show_prints_each_engine_with_its_cuda_version_and_host_ami(capsys):
    assert ownllm_main(["images", "show", "--region", "eu-west-1"]) == 0
    out = capsys.readouterr().out
    cells = [line.split("│")[1:-1] for line in out.splitlines() if line.startswith("│")]
    rows = [[c.strip() for c in row] for row in cells if row[0].strip()]  # long values fold onto more lines
    assert [(r[0], r[3], r[5]) for r in rows] == [("vllm", "13.0", "35"), ("lmi", "13.0", "34"), ("tgi", "12.4", "35")]


def test_images_refresh_writes_the_table_it_reports(tmp_path, capsys, sdk_table):
    target = tmp_path / "images.json"
    assert ownllm_main(["images", "refresh", "--output", str(target)]) == 0
    assert json.loads(target.read_text()) == sdk_table
    assert capsys.readouterr().out.strip() == f"wrote {target}: 3 engines, 104 images, from sagemaker-core 2.27.0"
    images.load_table.cache_clear()  # refresh resets the cache; later tests read the committed table again


@pytest.mark.parametrize(
    "output, problem",
    [
        ("", "is a folder; give a file name"),
        ("no-such-folder/images.json", "its folder {tmp}/no-such-folder does not exist"),
    ],
)
def test_images_refresh_to_a_path_it_cannot_write_is_one_line_before_the_sdk_is_asked(
    tmp_path, capsys, output, problem
):
    """A folder as --output was an IsADirectoryError traceback, after the SDK had been read."""
    target = str(tmp_path / output) if output else str(tmp_path)
    assert ownllm_main(["images", "refresh", "--output", target]) == 2
    why = problem.replace("{tmp}/no-such-folder", repr(str(tmp_path / "no-such-folder")))
    assert capsys.readouterr() == ("", f"images refresh: --output {target!r}: {why}; nothing written\n")


def test_images_show_for_a_region_ownllm_does_not_support_is_one_line(capsys):
    from ownllm.regions import unsupported_region_problem

    assert ownllm_main(["images", "show", "--region", "us-eats-1"]) == 2
    assert capsys.readouterr() == ("", f"images show: --{unsupported_region_problem('us-eats-1')}\n")
