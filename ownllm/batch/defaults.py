"""The defaults of `ownllm batch run`, apart so the CLI can show them without importing asyncio."""

from ownllm.wake import WAIT_LIMIT_S

DEFAULT_CONCURRENCY = 16  # when the performance model cannot size one for the configured endpoint
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_TIMEOUT_S = 120.0
# SageMaker provisions an instance for an endpoint scaled to zero in "several minutes", failing
# invocations meanwhile (https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-zero-instances.html);
# as long as `ownllm wake` waits for one.
DEFAULT_STARTUP_WAIT_S = WAIT_LIMIT_S
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
MAX_RETRY_AFTER_S = 600.0  # a Retry-After beyond this is a misconfigured server, not advice
