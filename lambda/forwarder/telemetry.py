"""The forwarder's metric names: what it emits (app.py), what the stacks declare, price and graph.

Dependency-free, so the stacks and the cost model load this file by path (ownllm/forwarder.py).
"""

from __future__ import annotations

REQUESTS = "Requests"
MODEL_LATENCY = "ModelLatency"
PROMPT_TOKENS = "PromptTokens"
COMPLETION_TOKENS = "CompletionTokens"
COLD_START = "ColdStart"  # Powertools' own (capture_cold_start_metric)
# Emitted on every request (ColdStart once per environment): each is one custom metric.
METRICS = (REQUESTS, MODEL_LATENCY, PROMPT_TOKENS, COMPLETION_TOKENS, COLD_START)
# One more custom metric per error class seen (errors.ERROR_CLASSES).
ERRORS = "Errors"
ERROR_CLASS_DIMENSION = "ErrorClass"
