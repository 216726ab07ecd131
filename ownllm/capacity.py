"""What one instance serves for the configured model and traffic: the one place the stacks,
the forwarder's limits and the cost estimate read serving figures from.

Each figure comes from one of three sources, named with it:
- "setting": the user set it (target_concurrency_per_instance, latency_p95_ms);
- "calibrated": `ownllm bench --calibrate` measured it (generation_tokens_per_s,
  instance_tokens_per_s in cdk.json), which always beats the model;
- "model": the calibrated roofline performance model (ownllm.perf) predicted it.

Pure Python, no CDK import; takes plain values so Settings can resolve its own defaults
from it while it validates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from ownllm.perf.hardware import Hardware, HardwareError, for_instance, gpu_instance_types
from ownllm.perf.models import ModelArch, ModelError, lookup, resolve
from ownllm.perf.predict import PRECISIONS, Prediction, PredictionError, predict, saturation

MODEL, CALIBRATED, SETTING = "model", "calibrated", "setting"
# The Lambda forwarder spends a little beyond generation on the SageMaker round trip,
# request validation and JSON (de)serialisation (an assumption, not a measurement).
LAMBDA_OVERHEAD_S = 0.2
# The default latency alarm: a p95 at twice the mean predicted request time (output lengths
# vary around their mean; an assumption), rounded up to whole seconds.
LATENCY_HEADROOM = 2.0
# Instance types a "does not fit" message names at most.
FIT_HINTS = 5


class CapacityError(ValueError):
    """The model, instance and precision cannot serve together; the message says what would."""


@dataclass(frozen=True)
class Figure:
    value: float
    source: str  # MODEL, CALIBRATED or SETTING
    basis: str  # how it was reached, in words

    def described(self, unit: str) -> str:
        return f"{self.value:,.4g} {unit} ({self.source}: {self.basis})"


@dataclass(frozen=True)
class ServingCapacity:
    """One instance under the assumed requests, at the autoscaling target."""

    label: str  # "Qwen/Qwen2.5-7B-Instruct bf16 on 1 x A10G (ml.g5.2xlarge), vllm"
    precision: str
    kv_limit: int  # sequences the KV cache holds at the mean request length
    target_concurrency: Figure  # requests in flight per instance: the autoscaling target
    request_tokens_per_s: Figure  # output tokens / whole request time, as one client sees it
    instance_tokens_per_s: Figure  # aggregate output tokens/s of one instance at the target
    time_to_first_token_s: float
    decode_tokens_per_s: float  # 1 / time per output token at the target (model figure)
    latency_alarm_ms: Figure
    max_output_tokens: Figure  # the largest max_tokens a buffered request finishes within lambda_timeout_s
    weights_gib: float

    def request_time_s(self, output_tokens: int) -> float:
        return output_tokens / self.request_tokens_per_s.value

    def to_dict(self) -> dict[str, object]:
        def fig(f: Figure) -> dict[str, object]:
            return {"value": round(f.value, 4), "source": f.source, "basis": f.basis}

        return {
            "label": self.label,
            "precision": self.precision,
            "kv_limit": self.kv_limit,
            "target_concurrency": fig(self.target_concurrency),
            "request_tokens_per_s": fig(self.request_tokens_per_s),
            "instance_tokens_per_s": fig(self.instance_tokens_per_s),
            "time_to_first_token_s": round(self.time_to_first_token_s, 4),
            "decode_tokens_per_s": round(self.decode_tokens_per_s, 4),
            "latency_alarm_ms": fig(self.latency_alarm_ms),
            "max_output_tokens": fig(self.max_output_tokens),
        }


def _table_name(model_id: str) -> str:
    """The name the bundled table knows a model by: a Hub id, or an s3:// prefix's last folder."""
    return model_id.rstrip("/").rsplit("/", 1)[-1] if model_id.startswith("s3://") else model_id


def bundled_arch(model_id: str) -> ModelArch | None:
    """The architecture the bundled table holds for this model (from its config.json), else None."""
    return lookup(_table_name(model_id))


def model_arch(model_id: str, size_b: float | None, inferred_size_b: float | None) -> ModelArch:
    """The bundled architecture of a Hub id, else a Llama-shaped one of the (given or inferred) size."""
    name = _table_name(model_id)
    if lookup(name) is not None:
        return resolve(name, size_b=size_b)
    size = size_b or inferred_size_b
    if not size:
        raise CapacityError(f"model_size_b: not set and {model_id!r} is not in the bundled model table")
    try:
        return resolve(name, size_b=size)
    except ModelError as exc:  # pragma: no cover - a positive size always resolves
        raise CapacityError(str(exc)) from None


def default_precision(instance_type: str) -> str:
    """bf16, or fp16 on GPUs without bf16 (the T4 of g4dn): the same size and speed there."""
    try:
        return "bf16" if for_instance(instance_type).gpu.bf16 else "fp16"
    except HardwareError:
        return "bf16"


def fit_problem(
    arch: ModelArch, instance_type: str, precision: str, engine: str, input_tokens: int, output_tokens: int
) -> str:
    """Why `precision` cannot serve the model on the instance, naming what would; "" when it fits."""
    try:
        hw = for_instance(instance_type)
        p = predict(arch, hw, precision, engine, max(input_tokens, 1), max(output_tokens, 1))
    except (HardwareError, PredictionError) as exc:
        return f"precision: {precision!r} {_strip_flag(str(exc))}"
    if p.fits:
        return ""
    fitting = [
        name
        for name in PRECISIONS
        if name != precision and _fits(arch, hw, name, engine, max(input_tokens, 1), max(output_tokens, 1))
    ]
    types = [
        t
        for t in gpu_instance_types()
        if t != instance_type and _fits(arch, for_instance(t), precision, engine, input_tokens, output_tokens)
    ][:FIT_HINTS]
    here = f"precisions that fit there: {', '.join(fitting)}" if fitting else "no precision fits there"
    there = f"instance types that fit at {precision}: {', '.join(types)}" if types else f"no instance fits {precision}"
    return f"precision: {precision!r} does not fit {arch.name} on {instance_type}: {p.reason or 'too large'}; {here}; {there}"


def _strip_flag(text: str) -> str:
    """perf's messages name CLI flags ('--precision bf16: ...'); keep what follows the colon."""
    text = text.split(": ", 1)[1] if text.startswith("--") and ": " in text else text
    return text.replace("--precision ", "precision ")


def _fits(arch: ModelArch, hw: Hardware, precision: str, engine: str, inp: int, out: int) -> bool:
    try:
        return predict(arch, hw, precision, engine, max(inp, 1), max(out, 1)).fits
    except PredictionError:
        return False


@cache
def serving_capacity(
    arch: ModelArch,
    instance_type: str,
    precision: str,
    engine: str,
    input_tokens: int,
    output_tokens: int,
    max_batch: int,
    min_tokens_per_s: float,
    lambda_timeout_s: float,
    target_concurrency: int | None = None,
    generation_tokens_per_s: float | None = None,
    instance_tokens_per_s: float | None = None,
    latency_ms: int | None = None,
) -> ServingCapacity:
    """The figures at the autoscaling target. None means "not set": the model supplies it.

    The target defaults to the knee of the throughput curve that still gives every request
    `min_tokens_per_s` (perf.saturation with the speed floor), which lies within the KV
    cache's limit; where even one request is slower than the floor it is 1.
    """
    hw = for_instance(instance_type)
    inp, out = max(input_tokens, 1), max(output_tokens, 1)
    what = f"{arch.name} {precision} on {hw.label}, {engine}"
    if target_concurrency is not None:
        target = Figure(float(target_concurrency), SETTING, "target_concurrency_per_instance")
    else:
        c, _ = saturation(arch, hw, precision, engine, inp, out, min_tokens_per_s=min_tokens_per_s, max_batch=max_batch)
        basis = (
            f"the concurrency where throughput levels off while each request keeps >= {min_tokens_per_s:g} "
            f"tokens/s (min_tokens_per_s_per_request), within the KV cache's limit"
        )
        if c == 0:
            c, basis = 1, f"one request at a time: even alone a request is slower than {min_tokens_per_s:g} tokens/s"
        target = Figure(float(c), MODEL, basis)
    c = int(target.value)
    p: Prediction = predict(arch, hw, precision, engine, inp, out, concurrency=c, max_batch=max_batch)
    if not p.fits:
        raise CapacityError(f"{what}: {p.reason}")
    tpot = 1.0 / p.per_request_tokens_per_s
    model_request_s = p.time_to_first_token_s + (out - 1) * tpot
    at = f"{what}, {inp} in / {out} out tokens at {c} concurrent requests"
    if generation_tokens_per_s:
        request = Figure(generation_tokens_per_s, CALIBRATED, "generation_tokens_per_s from ownllm bench --calibrate")
    else:
        request = Figure(out / model_request_s, MODEL, f"ownllm.perf: {at}")
    if instance_tokens_per_s:
        instance = Figure(instance_tokens_per_s, CALIBRATED, "instance_tokens_per_s from ownllm bench --calibrate")
    else:
        instance = Figure(p.output_tokens_per_s, MODEL, f"ownllm.perf: {at}")
    request_s = out / request.value
    ceiling_ms = lambda_timeout_s * 1000
    if latency_ms is not None:
        latency = Figure(float(latency_ms), SETTING, "latency_p95_ms")
    else:
        alarm = min(math.ceil(request_s * LATENCY_HEADROOM), lambda_timeout_s) * 1000
        latency = Figure(
            float(alarm),
            request.source,
            f"{LATENCY_HEADROOM:g} x the {request_s:.1f} s a request takes, at most the "
            f"{lambda_timeout_s:g} s buffered-answer budget ({ceiling_ms:,.0f} ms)",
        )
    budget = lambda_timeout_s - LAMBDA_OVERHEAD_S
    if generation_tokens_per_s:
        tokens = math.floor(budget * generation_tokens_per_s)
        basis = f"{budget:g} s (lambda_timeout_s less overhead) x {generation_tokens_per_s:g} tokens/s"
    else:
        tokens = math.floor((budget - p.time_to_first_token_s) / tpot) + 1
        basis = (
            f"({budget:g} s - {p.time_to_first_token_s:.2f} s to the first token) x "
            f"{p.per_request_tokens_per_s:.1f} tokens/s + 1, at {c} concurrent requests"
        )
    cap = Figure(float(max(tokens, 1)), request.source, basis)
    return ServingCapacity(
        label=what,
        precision=precision,
        kv_limit=p.max_concurrency,
        target_concurrency=target,
        request_tokens_per_s=request,
        instance_tokens_per_s=instance,
        time_to_first_token_s=p.time_to_first_token_s,
        decode_tokens_per_s=p.per_request_tokens_per_s,
        latency_alarm_ms=latency,
        max_output_tokens=cap,
        weights_gib=p.weights_gib,
    )
