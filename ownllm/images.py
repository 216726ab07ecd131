"""Engine container images per region, resolved with the SageMaker SDK.

Environment-agnostic stacks do not know their region at synth time, so the stack gets a
region -> image map for every region the SDK knows for the pinned engine version, and
CloudFormation picks the entry for the region it deploys to.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path

from ownllm.engines import ENGINE_IMAGES

_URI_RE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(?P<repo>[^:]+):(?P<tag>.+)$"
)


_COMMERCIAL_REGION = re.compile(r"^(?!cn-|us-gov-)[a-z]{2}-[a-z]+-\d$")


@dataclass(frozen=True)
class ImageRef:
    uri: str
    account: str
    repository: str

    @classmethod
    def parse(cls, uri: str) -> ImageRef:
        m = _URI_RE.match(uri)
        if not m:
            raise ValueError(f"not an ECR image URI: {uri!r}")
        return cls(uri, m.group("account"), m.group("repo"))


def _sdk_config(framework: str) -> dict:
    """The SDK's image config for a framework, read without importing the SDK."""
    from ownllm.gpus import sdk_data_file

    path = sdk_data_file(f"{framework}.json")
    if path is None:
        raise RuntimeError("the sagemaker-core package is not installed (pip install -e .)")
    config = json.loads(path.read_text())
    return config.get("inference", config)


def _registries(framework: str, version: str) -> dict[str, str]:
    """region -> ECR account, from the SDK's own image config for the pinned version."""
    return _sdk_config(framework)["versions"][version]["registries"]


def sdk_retrieve(engine: str, region: str) -> ImageRef:
    """The SDK's answer for one region (`sagemaker.core.image_uris.retrieve`), uncached."""
    from sagemaker.core import image_uris  # ~1.8 s import

    pinned = ENGINE_IMAGES[engine]
    return ImageRef.parse(image_uris.retrieve(pinned.framework, region=region, version=pinned.version))


def _cache_file() -> Path:
    root = os.environ.get("OWNLLM_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "ownllm")
    return Path(root).expanduser() / "images.json"


@cache
def engine_image(engine: str, region: str) -> ImageRef:
    """The SDK's image for an engine in a region, remembered per sagemaker-core version.

    Importing the SDK costs ~1.8 s, most of a synth's own work; the answer only changes
    with the SDK version (or the pinned engine version), which is part of the cache key.
    """
    pinned = ENGINE_IMAGES[engine]
    key = f"sagemaker-core=={version('sagemaker-core')} {pinned.framework}=={pinned.version} {region}"
    path = _cache_file()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return ImageRef.parse(known[key])
    image = sdk_retrieve(engine, region)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**known, key: image.uri}, indent=1, sort_keys=True))
        tmp.replace(path)  # atomic: parallel synths never read half a file
    except OSError:
        pass  # a read-only home still synthesizes, just slower
    return image


@cache
def engine_image_map(engine: str, anchor_region: str = "us-east-1") -> dict[str, ImageRef]:
    """region -> image for every commercial region that hosts the pinned engine image.

    The SDK resolves the anchor region; the other regions differ only in the registry
    account and region, which come from the same SDK config. (Calling `retrieve` 35 times
    costs ~1.4 s per synth; tests check this map against `retrieve` for every region.)
    """
    pinned = ENGINE_IMAGES[engine]
    anchor = engine_image(engine, anchor_region)
    host_suffix = f".dkr.ecr.{anchor_region}.amazonaws.com/"
    path = anchor.uri.split(host_suffix, 1)[1]
    return {
        region: ImageRef(f"{account}.dkr.ecr.{region}.amazonaws.com/{path}", account, anchor.repository)
        for region, account in sorted(_registries(pinned.framework, pinned.version).items())
        if _COMMERCIAL_REGION.match(region)
    }
