"""Suite-wide setup: quiet jsii on Node 20, no AWS credentials or network needed."""

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Property tests run the same examples on every machine (CI must not find a new one by chance);
# `--hypothesis-profile explore` searches afresh when you want new examples.
settings.register_profile("ci", derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
