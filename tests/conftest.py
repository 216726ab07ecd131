"""Suite-wide setup: quiet jsii on Node 20, no AWS credentials or network needed."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
