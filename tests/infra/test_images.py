"""Engine images come from the SageMaker SDK, for every region the stack may deploy to."""

import pytest

from ownllm.engines import ENGINE_IMAGES
from ownllm.images import engine_image, engine_image_map, sdk_retrieve


@pytest.mark.parametrize("engine", sorted(ENGINE_IMAGES))
def test_the_region_map_is_what_the_sdk_resolves_for_every_region(engine):
    images = engine_image_map(engine)
    assert {"us-east-1", "us-west-2", "eu-west-1"} <= set(images)
    assert not [r for r in images if r.startswith(("cn-", "us-gov-"))]
    for region, image in images.items():
        assert sdk_retrieve(engine, region) == image, region


@pytest.mark.parametrize(
    "engine, repository, tag_start",
    [
        ("vllm", "vllm", "0.30.0-gpu"),
        ("lmi", "djl-inference", "0.38.0-lmi"),
        ("tgi", "huggingface-pytorch-tgi-inference", "2.7.0-tgi3.3.6"),
    ],
)
def test_each_engine_is_pinned_to_one_image_version(engine, repository, tag_start):
    image = engine_image(engine, "us-west-2")
    assert image.repository == repository
    assert image.uri.split(":", 1)[1].startswith(tag_start)
    assert image.uri.startswith(f"{image.account}.dkr.ecr.us-west-2.amazonaws.com/")


def test_images_are_remembered_per_sdk_version_so_synth_skips_the_sdk_import(tmp_path, monkeypatch):
    import json

    import ownllm.images as images

    monkeypatch.setenv("OWNLLM_CACHE_DIR", str(tmp_path))
    images.engine_image.cache_clear()
    try:
        first = images.engine_image("tgi", "eu-west-1")
        [(key, uri)] = json.loads((tmp_path / "images.json").read_text()).items()
        assert key.startswith("sagemaker-core==") and key.endswith("huggingface-llm==3.3.6 eu-west-1")
        assert uri == first.uri == sdk_retrieve("tgi", "eu-west-1").uri
        (tmp_path / "images.json").write_text(json.dumps({key: uri.replace("3.3.6", "9.9.9")}))
        images.engine_image.cache_clear()
        assert "9.9.9" in images.engine_image("tgi", "eu-west-1").uri  # served from the file, not the SDK
    finally:
        images.engine_image.cache_clear()
