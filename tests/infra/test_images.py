"""Engine images come from the SageMaker SDK, for every region the stack may deploy to."""

import pytest

from ownllm.engines import ENGINE_IMAGES
from ownllm.images import engine_image, engine_image_map


@pytest.mark.parametrize("engine", sorted(ENGINE_IMAGES))
def test_the_region_map_is_what_the_sdk_resolves_for_every_region(engine):
    images = engine_image_map(engine)
    assert {"us-east-1", "us-west-2", "eu-west-1"} <= set(images)
    assert not [r for r in images if r.startswith(("cn-", "us-gov-"))]
    for region, image in images.items():
        assert engine_image(engine, region) == image, region


@pytest.mark.parametrize(
    "engine, repository, tag_start",
    [("vllm", "vllm", "0.30.0-gpu"), ("lmi", "djl-inference", "0.38.0-lmi"), ("tgi", "huggingface-pytorch-tgi-inference", "2.7.0-tgi3.3.6")],
)
def test_each_engine_is_pinned_to_one_image_version(engine, repository, tag_start):
    image = engine_image(engine, "us-west-2")
    assert image.repository == repository
    assert image.uri.split(":", 1)[1].startswith(tag_start)
    assert image.uri.startswith(f"{image.account}.dkr.ecr.us-west-2.amazonaws.com/")
