"""Roofline-style serving prediction: memory fit, KV capacity, TTFT, decode speed, throughput.

One decode step reads the weights once plus every running sequence's KV cache (memory-bound),
or is bound by the tensor cores once the batch is large enough; prefill is compute-bound.
Tensor parallelism splits both across GPUs and adds two all-reduces per layer per step.
Achieved fractions of the datasheet figures and the per-step overheads are calibrated
(calibrate.py) on published measurements; see docs/performance.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path

from ownllm.perf.hardware import GIB, Hardware
from ownllm.perf.models import ModelArch

CALIBRATION_JSON = Path(__file__).resolve().parent / "data" / "calibration.json"


class PredictionError(ValueError):
    """An impossible combination (e.g. bf16 on a T4); the message says what to use instead."""


@dataclass(frozen=True)
class Precision:
    name: str
    weight_bytes: float  # per parameter, scales included
    kv_bytes: float  # per KV element
    fp8_compute: bool  # uses fp8 tensor cores where the GPU has them
    weight_only: bool  # dequantized to 16-bit in the matmul kernels (AWQ/GPTQ/W8A16)


# int4: 4-bit weights with a 16-bit scale and zero point per group of 128 (AWQ/GPTQ default):
# 0.5 + 4/128 bytes. The KV cache stays 16-bit unless the engine is told otherwise (with_kv_cache).
PRECISIONS: dict[str, Precision] = {
    "bf16": Precision("bf16", 2.0, 2.0, False, False),
    "fp16": Precision("fp16", 2.0, 2.0, False, False),
    "fp8": Precision("fp8", 1.0, 2.0, True, False),
    "int8": Precision("int8", 1.0, 2.0, False, True),
    "int4": Precision("int4", 0.5 + 4 / 128, 2.0, False, True),
}


@dataclass(frozen=True)
class Engine:
    name: str
    memory_fraction: float  # share of GPU memory the engine budgets for weights + activations + KV
    default_max_batch: int  # sequences decoded together at most
    generation: str  # "current"; "legacy-vllm"/"legacy-tgi" for old versions some published points measured
    chunked_prefill: bool  # prompts ride along decode steps (else a prefill is a pass of its own)
    prefill_chunk: int = 2048  # prompt tokens per step at most (sizes the activation peak)
    large_gpu_max_batch: int = 0  # the batch default on >= 70 GiB GPUs other than the A100 (0 = same)
    large_gpu_prefill_chunk: int = 0  # the chunk default there (0 = same)

    def _large(self, hw: Hardware) -> bool:
        return hw.memory_per_gpu_gib >= 70 and not hw.gpu.name.startswith("A100")

    def max_batch(self, hw: Hardware) -> int:
        return self.large_gpu_max_batch if self.large_gpu_max_batch and self._large(hw) else self.default_max_batch

    def chunk(self, hw: Hardware) -> int:
        return self.large_gpu_prefill_chunk if self.large_gpu_prefill_chunk and self._large(hw) else self.prefill_chunk


# vLLM: gpu_memory_utilization 0.9 (its default, and what ownllm sets: SM_VLLM_GPU_MEMORY_UTILIZATION);
# server defaults max_num_seqs 256 and max_num_batched_tokens 2048, or 1024 and 8192 on GPUs of
# >= 70 GiB other than the A100 (vllm/engine/arg_utils.py get_batch_defaults). ownllm itself caps the
# batch with settings max_batch_size (SM_VLLM_MAX_NUM_SEQS): pass it as max_batch. LMI: DJL Serving with OPTION_ROLLING_BATCH=vllm, so vLLM's memory
# budget and scheduler. TGI: CUDA_MEMORY_FRACTION 1.0, KV sized after a warmup prefill; 0.95 leaves the
# room that warmup takes (assumption); max concurrent requests 128 (TGI --max-concurrent-requests default).
# The pinned images (ownllm/engines.py: vLLM DLC, LMI 0.38 on vLLM V1, TGI 3.3) all chunk prefills
# (vLLM V1 always; TGI since 3.0) and capture CUDA graphs, so they share the "current" overheads.
ENGINES: dict[str, Engine] = {
    "vllm": Engine("vllm", 0.90, 256, "current", True, 2048, 1024, 8192),
    # DJL's OPTION_MAX_ROLLING_BATCH_SIZE default 256 is passed to vLLM as max_num_seqs.
    "lmi": Engine("lmi", 0.90, 256, "current", True, 2048),
    # TGI: --max-batch-prefill-tokens default 4096.
    "tgi": Engine("tgi", 0.95, 128, "current", True, 4096),
}
# Only for published points measured on older versions (calibration): vLLM 0.5/0.6 (V0 scheduler,
# prefill as its own step, CPU-bound scheduling) and TGI 1.0 (prefill passes, no chunking).
LEGACY_ENGINES: dict[str, Engine] = {
    "vllm-0.5": Engine("vllm-0.5", 0.90, 256, "legacy-vllm", False, 8192),
    # vLLM 0.6 with multi-step scheduling: the CPU overhead gone, prefill still its own step.
    "vllm-0.6": Engine("vllm-0.6", 0.90, 256, "current", False, 8192),
    "tgi-1.0": Engine("tgi-1.0", 0.95, 128, "legacy-tgi", False, 4096),
}

# Per GPU, outside the engine's KV pool: CUDA context, cuBLAS workspaces and CUDA graphs (assumption,
# ~1 GiB), plus the activation peak the engine profiles: one prefill chunk (Engine.chunk) through the
# widest layer (gate and up projections, 2 x intermediate, plus ~4 x hidden of attention and
# residual buffers) and the sampler's fp32 logits for a full batch.
RUNTIME_OVERHEAD_GIB = 1.0
# Activations cross the tensor-parallel link in 16 bits.
ACTIVATION_BYTES = 2
# All-reduce over PCIe (g4dn/g5/g6/g6e) with the current engines is NCCL's ring: vLLM's own all-reduce kernel
# runs on NVLink, or on two PCIe GPUs with peer access only (vllm custom_all_reduce.py: "Custom allreduce is
# disabled because it's not supported on more than two PCIe-only GPUs"; vllm-project/vllm issue #56128).
# Measured, not fitted (no current-engine PCIe point pins them): nccl-tests all-reduce of 64 MB over
# 4 x RTX 4090 on PCIe 4.0 x16 without peer access took 11,369 us, a bus bandwidth of 8.9 GB/s (Baobao
# Algorithm Notes, "Why NVLink supercharges Llama 3 70B inference", besthub.dev; 4 x A100 with
# NCCL_P2P_DISABLE=1 lost the same time in vLLM prefill); a 4-rank NCCL all-reduce of 4-32 KB inside a CUDA
# graph over PCIe took 19-24 us (haohervchb/sglang-V100 pull request #2, 4 x V100 behind a PCIe switch).
PCIE_ALLREDUCE_BUS_SHARE = 8.9 / 32  # achieved bus bandwidth / one direction of a PCIe 4.0 x16 link
PCIE_ALLREDUCE_LATENCY_S = 20e-6 / 3  # per extra GPU (20 us over 4 GPUs)


@dataclass(frozen=True)
class Efficiency:
    """Calibrated factors: achieved fractions of datasheet figures and fixed costs."""

    bandwidth: float  # achieved share of memory bandwidth in decode
    flops: float  # achieved share of dense tensor FLOPS (prefill, large batches)
    dequant_flops_per_weight: float  # weight-only int4/int8 kernels: unpacking work per weight per pass
    step_overhead_s: float  # scheduler, sampling, kernel launches per step (current engines)
    layer_overhead_s: float  # per layer per step: the latency floor of its small kernels (norms, rope, ...)
    legacy_layer_overhead_s: float  # the same without CUDA graphs and fused kernels (legacy engines)
    seq_overhead_s: float  # per running sequence per step (batch bookkeeping, sampling)
    legacy_vllm_step_overhead_s: float  # the same for vLLM 0.5/0.6 (calibration only)
    legacy_tgi_step_overhead_s: float  # the same for TGI 1.0 (calibration only)
    legacy_seq_overhead_s: float  # per sequence per step, legacy engines
    allreduce_nvlink_s: float  # latency of one all-reduce per extra GPU on NVLink (PCIe: measured constants)
    legacy_tgi_pcie_bandwidth: float  # TGI 1.0's achieved all-reduce bus bandwidth over PCIe, as a share of the link
    legacy_tgi_allreduce_pcie_s: float  # TGI 1.0's latency of one all-reduce per extra GPU over PCIe (eager NCCL)
    tp_step_sync_s: float  # per step and extra GPU: the scheduler's output reaching every worker
    legacy_tgi_tp_sync_s: float  # the same for TGI 1.0's one-process-per-shard design

    def step_overhead(self, engine: Engine) -> float:
        if engine.generation == "legacy-vllm":
            return self.legacy_vllm_step_overhead_s
        if engine.generation == "legacy-tgi":
            return self.legacy_tgi_step_overhead_s
        return self.step_overhead_s

    def seq_overhead(self, engine: Engine) -> float:
        return self.seq_overhead_s if engine.generation == "current" else self.legacy_seq_overhead_s

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@cache
def calibrated() -> Efficiency:
    """The committed, fitted factors (data/calibration.json, written by `python -m ownllm.perf.calibrate`)."""
    data = json.loads(CALIBRATION_JSON.read_text())
    return Efficiency(**{k: float(v) for k, v in data["factors"].items()})


@dataclass(frozen=True)
class Prediction:
    fits: bool
    max_concurrency: int  # sequences the KV cache holds at their mean length (capped by the engine's batch)
    time_to_first_token_s: float
    per_request_tokens_per_s: float  # decode speed each request sees at this concurrency
    output_tokens_per_s: float  # aggregate over all requests at this concurrency
    saturation_concurrency: int
    saturation_output_tokens_per_s: float
    gpu: str
    gpu_count: int
    model_params_b: float
    weights_gib: float  # all GPUs together
    kv_cache_gib: float  # KV pool, all GPUs together
    reason: str = ""  # why it does not fit

    def to_json(self) -> dict[str, object]:
        """The figures, with no time to first token (null) where the model does not fit."""
        d = asdict(self)
        d.pop("reason")
        if not math.isfinite(self.time_to_first_token_s):
            d["time_to_first_token_s"] = None
        return d


def precision_for(name: str, hw: Hardware) -> Precision:
    key = name.strip().lower()
    if key not in PRECISIONS:
        raise PredictionError(f"--precision {name!r}: accepted: {', '.join(PRECISIONS)}")
    if key == "bf16" and not hw.gpu.bf16:
        raise PredictionError(
            f"--precision bf16: the {hw.gpu.name} has no bf16; use --precision fp16 (same size and speed)"
        )
    if key == "fp8" and hw.gpu.name == "T4":
        raise PredictionError(
            "--precision fp8: the T4 runs no fp8 kernels (they need Ampere or newer); use int8 or int4"
        )
    return PRECISIONS[key]


KV_CACHE_DTYPES = ("auto", "fp8")


def with_kv_cache(precision: Precision, kv_cache: str) -> Precision:
    """The precision with the engine's KV cache dtype: "auto" keeps 16 bits, "fp8" stores 1 byte
    per element (vLLM --kv-cache-dtype fp8)."""
    key = kv_cache.strip().lower()
    if key not in KV_CACHE_DTYPES:
        raise PredictionError(f"--kv-cache-dtype {kv_cache!r}: accepted: {', '.join(KV_CACHE_DTYPES)}")
    return replace(precision, kv_bytes=1.0) if key == "fp8" else precision


def engine_for(name: str) -> Engine:
    key = name.strip().lower()
    if key in LEGACY_ENGINES:
        return LEGACY_ENGINES[key]
    if key not in ENGINES:
        raise PredictionError(f"--engine {name!r}: accepted: {', '.join(ENGINES)}")
    return ENGINES[key]


# --- the physics ---------------------------------------------------------------------------


def shard_problem(model: ModelArch, hw: Hardware) -> str:
    """Why the model cannot be split over all the instance's GPUs (the kit's tensor-parallel degree), or "".
    vLLM refuses a degree that does not divide the attention heads, and one that neither divides the KV heads
    nor is a multiple of them (vllm/config.py verify_with_parallel_config; vLLM's QKVParallelLinear)."""
    tp = hw.count
    if model.heads % tp:
        return (
            f"its {model.heads} attention heads do not split over {tp} GPUs (vLLM needs the GPU count to divide them)"
        )
    if model.kv_heads % tp and tp % model.kv_heads:
        return f"its {model.kv_heads} KV heads do not split over {tp} GPUs (vLLM needs one to divide the other)"
    return ""


def kv_bytes(model: ModelArch, hw: Hardware, precision: Precision, context: float) -> float:
    """KV cache bytes of one sequence over all GPUs. With more GPUs than KV heads each GPU keeps a copy of
    one head, so the cache grows by GPUs / KV heads."""
    return model.kv_elements(context) * precision.kv_bytes * max(1.0, hw.count / model.kv_heads)


def weight_bytes(model: ModelArch, precision: Precision) -> float:
    """All weights. Quantized checkpoints keep the embedding table and output head in 16 bits."""
    total = model.params_b * 1e9
    emb = model.embedding_params * (1 if model.tied_embeddings else 2)
    if precision.weight_bytes >= 2:
        return total * precision.weight_bytes
    return (total - emb) * precision.weight_bytes + emb * 2


def _weight_bytes_read(model: ModelArch, precision: Precision, tokens: float) -> float:
    """Bytes one forward pass over `tokens` tokens reads: all weights but the input embedding table
    (a row lookup), and for MoE only the experts those tokens route to."""
    head = model.embedding_params
    body = model.params_b * 1e9 - head * (1 if model.tied_embeddings else 2)
    head_bytes = head * 2.0  # the output head stays 16-bit in quantized checkpoints too
    if model.is_moe:
        # Dense share: attention + embeddings; expert share: the rest, read as far as routed.
        expert_total = (
            (model.params_b - model.active_params_b) * model.experts / (model.experts - model.experts_per_token)
        )
        expert_total = min(expert_total * 1e9, body)
        shared = body - expert_total
        body = shared + expert_total * model.expert_fraction_read(tokens)
    return body * precision.weight_bytes + head_bytes


def _bandwidth(hw: Hardware, eff: Efficiency) -> float:
    return hw.gpu.bandwidth_gbs * 1e9 * eff.bandwidth


def _flops(hw: Hardware, precision: Precision, eff: Efficiency) -> float:
    tflops = hw.gpu.fp8_tflops if precision.fp8_compute and hw.gpu.fp8_tflops else hw.gpu.bf16_tflops
    return tflops * 1e12 * eff.flops


def _comm(model: ModelArch, hw: Hardware, engine: Engine, tokens: float, eff: Efficiency) -> float:
    """Two ring all-reduces per layer of `tokens` x hidden activations across the instance's GPUs."""
    tp = hw.count
    if tp <= 1:
        return 0.0
    sync = (eff.legacy_tgi_tp_sync_s if engine.generation == "legacy-tgi" else eff.tp_step_sync_s) * (tp - 1)
    payload = tokens * model.hidden * ACTIVATION_BYTES
    if hw.gpu.link == "pcie":
        legacy = engine.generation == "legacy-tgi"
        share = eff.legacy_tgi_pcie_bandwidth if legacy else PCIE_ALLREDUCE_BUS_SHARE
        latency = eff.legacy_tgi_allreduce_pcie_s if legacy else PCIE_ALLREDUCE_LATENCY_S
    else:
        share, latency = 1.0, eff.allreduce_nvlink_s
    link = hw.gpu.link_gbs * 1e9 * share
    per = latency * (tp - 1) + 2 * (tp - 1) / tp * payload / link
    return sync + 2 * model.layers * per


def _linear_flops(model: ModelArch, tokens: float) -> float:
    return 2.0 * model.active_b * 1e9 * tokens


def _attention_flops(model: ModelArch, query_tokens: float, context: float) -> float:
    # QK^T and PV: 2 matmuls x 2 FLOPs per multiply-add over heads x head_dim, per context token.
    return 4.0 * model.layers * model.heads * model.head_dim * query_tokens * context


def step_time(
    model: ModelArch,
    hw: Hardware,
    precision: Precision,
    engine: Engine,
    batch: float,
    context: float,
    prefill_tokens: float,
    prefill_context: float,
    eff: Efficiency,
) -> float:
    """One engine step: `batch` sequences decode one token each at mean `context`, plus
    `prefill_tokens` prompt tokens scheduled into the same step (chunked prefill)."""
    tp = hw.count
    bw = _bandwidth(hw, eff) * tp
    tokens = batch + prefill_tokens
    t_weights = _weight_bytes_read(model, precision, tokens) / bw
    if precision.weight_only:
        # Unpacking 4/8-bit weights runs on the CUDA cores while the next ones stream in: whichever is
        # slower sets the pace (on fast-memory GPUs like the A100 it is the unpacking).
        body = model.active_b * 1e9 - model.embedding_params
        t_weights = max(t_weights, body * eff.dequant_flops_per_weight / (hw.gpu.cuda_fp16_tflops * 1e12 * tp))
    t_linear = _linear_flops(model, tokens) / (_flops(hw, precision, eff) * tp)
    t_kv = batch * kv_bytes(model, hw, precision, context) / bw
    t_attn = _attention_flops(model, prefill_tokens, prefill_context) / (_flops(hw, precision, eff) * tp)
    return (
        max(t_weights, t_linear)
        + t_kv
        + t_attn
        + _comm(model, hw, engine, tokens, eff)
        + eff.step_overhead(engine)
        + (eff.layer_overhead_s if engine.generation == "current" else eff.legacy_layer_overhead_s) * model.layers
        + eff.seq_overhead(engine) * batch
    )


def runtime_bytes_per_gpu(model: ModelArch, hw: Hardware, engine: Engine) -> float:
    """Memory each GPU needs besides weights and KV: context, graphs, activation peak, logits."""
    inter = model.intermediate or int(3.5 * model.hidden)
    activations = engine.chunk(hw) * (2 * inter / hw.count + 4 * model.hidden) * ACTIVATION_BYTES
    logits = engine.max_batch(hw) * model.vocab * 4
    return RUNTIME_OVERHEAD_GIB * GIB + activations + logits


def memory(model: ModelArch, hw: Hardware, precision: Precision, engine: Engine) -> tuple[float, float]:
    """(weights bytes, KV pool bytes), both over all GPUs; the pool is negative when weights do not fit."""
    weights = weight_bytes(model, precision)
    per_gpu = hw.memory_per_gpu_gib * GIB * engine.memory_fraction - runtime_bytes_per_gpu(model, hw, engine)
    return weights, hw.count * per_gpu - weights


@dataclass(frozen=True)
class _Point:
    ttft: float
    tpot: float
    throughput: float  # aggregate output tokens/s
    running: int


def _closed_loop(
    model: ModelArch,
    hw: Hardware,
    precision: Precision,
    engine: Engine,
    input_tokens: int,
    output_tokens: int,
    concurrency: int,
    capacity: int,
    eff: Efficiency,
) -> _Point:
    """Steady state of `concurrency` clients each sending the next request when the last one ends.

    At most `capacity` run at once; the rest queue. Each running request prefills once per
    output_tokens steps, so a step carries batch * input/output prompt tokens on average.
    """
    running = max(1, min(concurrency, capacity))
    context = input_tokens + output_tokens / 2
    decode_steps = max(output_tokens - 1, 0)
    arrivals = running / max(output_tokens, 1) if running > 1 else 0.0  # new requests per decode step
    if engine.chunked_prefill:
        tpot = step_time(model, hw, precision, engine, running, context, arrivals * input_tokens, input_tokens / 2, eff)
        # Own prefill, in chunks of at most the engine's step budget, each step shared with the
        # others' decodes; then half of the step in flight.
        chunks = math.ceil(input_tokens / engine.chunk(hw))
        ttft = chunks * step_time(
            model, hw, precision, engine, running - 1, context, input_tokens / chunks, input_tokens / 2, eff
        )
    else:
        # A prefill pass of the waiting prompts runs between decode steps, reading all weights again.
        waiting = max(arrivals, 1.0)
        prefill = step_time(model, hw, precision, engine, 0, 0, waiting * input_tokens, input_tokens / 2, eff)
        decode = step_time(model, hw, precision, engine, running, context, 0, 0, eff)
        tpot = decode + min(arrivals, 1.0) * prefill
        ttft = prefill
    if running > 1:
        ttft += 0.5 * tpot
    cycle = ttft + decode_steps * tpot
    rate = running / cycle  # requests per second
    if concurrency > running:
        ttft += (concurrency - running) / rate
    return _Point(ttft, tpot, rate * output_tokens, running)


def predict(
    model: ModelArch,
    hw: Hardware,
    precision: Precision | str = "bf16",
    engine: Engine | str = "vllm",
    input_tokens: int = 512,
    output_tokens: int = 256,
    concurrency: int = 1,
    *,
    kv_cache: str = "auto",
    max_batch: int | None = None,
    eff: Efficiency | None = None,
) -> Prediction:
    """What `hw` serving `model` does for requests of input+output tokens at a closed-loop concurrency."""
    prec = precision_for(precision, hw) if isinstance(precision, str) else precision
    prec = with_kv_cache(prec, kv_cache)
    eng = engine_for(engine) if isinstance(engine, str) else engine
    eff = eff or calibrated()
    if input_tokens < 1 or output_tokens < 1 or concurrency < 1:
        raise PredictionError("input tokens, output tokens and concurrency must each be at least 1")
    weights, pool = memory(model, hw, prec, eng)
    seq_len = input_tokens + output_tokens
    problem = shard_problem(model, hw)
    if problem or pool < kv_bytes(model, hw, prec, seq_len):
        need = (weights + kv_bytes(model, hw, prec, seq_len)) / GIB
        have = hw.count * (hw.memory_per_gpu_gib * eng.memory_fraction - runtime_bytes_per_gpu(model, hw, eng) / GIB)
        reason = problem or (
            f"needs {need:.1f} GiB for weights and one {seq_len}-token sequence; "
            f"{hw.label} leaves the engine {have:.1f} GiB after its runtime"
        )
        return Prediction(
            fits=False,
            max_concurrency=0,
            time_to_first_token_s=math.inf,
            per_request_tokens_per_s=0.0,
            output_tokens_per_s=0.0,
            saturation_concurrency=0,
            saturation_output_tokens_per_s=0.0,
            gpu=hw.gpu.name,
            gpu_count=hw.count,
            model_params_b=model.params_b,
            weights_gib=weights / GIB,
            kv_cache_gib=max(pool, 0.0) / GIB,
            reason=reason,
        )
    capacity = kv_capacity(model, hw, prec, pool, input_tokens, output_tokens, max_batch or eng.max_batch(hw))
    point = _closed_loop(model, hw, prec, eng, input_tokens, output_tokens, concurrency, capacity, eff)
    sat_c, sat_tps = _saturation(model, hw, prec, eng, input_tokens, output_tokens, capacity, eff)
    return Prediction(
        fits=True,
        max_concurrency=capacity,
        time_to_first_token_s=point.ttft,
        per_request_tokens_per_s=1.0 / point.tpot,
        output_tokens_per_s=point.throughput,
        saturation_concurrency=sat_c,
        saturation_output_tokens_per_s=sat_tps,
        gpu=hw.gpu.name,
        gpu_count=hw.count,
        model_params_b=model.params_b,
        weights_gib=weights / GIB,
        kv_cache_gib=pool / GIB,
    )


def kv_capacity(
    model: ModelArch,
    hw: Hardware,
    precision: Precision,
    pool: float,
    input_tokens: int,
    output_tokens: int,
    max_batch: int,
) -> int:
    """Sequences the KV pool holds at once. Paged KV (vLLM, TGI) allocates as tokens arrive, so a
    running request holds on average its prompt plus half its output."""
    mean = kv_bytes(model, hw, precision, input_tokens + output_tokens / 2)
    return max(0, min(int(pool // mean), max_batch))


def _saturation(
    model: ModelArch,
    hw: Hardware,
    precision: Precision,
    engine: Engine,
    input_tokens: int,
    output_tokens: int,
    capacity: int,
    eff: Efficiency,
    min_tokens_per_s: float = 0.0,
) -> tuple[int, float]:
    """The smallest concurrency reaching 95% of the best throughput (within the speed floor)."""
    best_c, best = 0, 0.0
    points: list[tuple[int, float]] = []
    for c in _concurrency_grid(capacity):
        p = _closed_loop(model, hw, precision, engine, input_tokens, output_tokens, c, capacity, eff)
        if min_tokens_per_s and 1.0 / p.tpot < min_tokens_per_s:
            break
        points.append((c, p.throughput))
        if p.throughput > best:
            best_c, best = c, p.throughput
    for c, tps in points:
        if tps >= 0.95 * best:
            return c, tps
    return best_c, best


def _concurrency_grid(capacity: int) -> list[int]:
    grid = sorted({*range(1, min(capacity, 16) + 1), *(int(round(1.25**k)) for k in range(13, 40)), capacity})
    return [c for c in grid if c <= capacity] or [1]


def saturation(
    model: ModelArch,
    hw: Hardware,
    precision: Precision | str = "bf16",
    engine: Engine | str = "vllm",
    input_tokens: int = 512,
    output_tokens: int = 256,
    *,
    min_tokens_per_s: float = 0.0,
    kv_cache: str = "auto",
    max_batch: int | None = None,
    eff: Efficiency | None = None,
) -> tuple[int, float]:
    """(concurrency, aggregate output tokens/s) at saturation, keeping each request at or above
    `min_tokens_per_s`; (0, 0.0) when the model does not fit or no concurrency meets the floor."""
    prec = precision_for(precision, hw) if isinstance(precision, str) else precision
    prec = with_kv_cache(prec, kv_cache)
    eng = engine_for(engine) if isinstance(engine, str) else engine
    eff = eff or calibrated()
    _, pool = memory(model, hw, prec, eng)
    if shard_problem(model, hw) or pool < kv_bytes(model, hw, prec, input_tokens + output_tokens):
        return 0, 0.0
    capacity = kv_capacity(model, hw, prec, pool, input_tokens, output_tokens, max_batch or eng.max_batch(hw))
    return _saturation(model, hw, prec, eng, input_tokens, output_tokens, capacity, eff, min_tokens_per_s)


def measure(
    model: ModelArch,
    hw: Hardware,
    precision: Precision | str,
    engine: Engine | str,
    input_tokens: int,
    output_tokens: int,
    concurrency: int,
    metric: str,
    eff: Efficiency | None = None,
) -> float:
    """The predicted value of one published metric (see data/measurements.csv):
    output_tokens_per_s (aggregate), decode_tokens_per_s (1 / time per output token), or
    request_tokens_per_s (output tokens / whole request time, TTFT included)."""
    prec = precision_for(precision, hw) if isinstance(precision, str) else precision
    eng = engine_for(engine) if isinstance(engine, str) else engine
    eff = eff or calibrated()
    _, pool = memory(model, hw, prec, eng)
    capacity = max(1, kv_capacity(model, hw, prec, max(pool, 0.0), input_tokens, output_tokens, eng.max_batch(hw)))
    p = _closed_loop(model, hw, prec, eng, input_tokens, output_tokens, concurrency, capacity, eff)
    if metric == "output_tokens_per_s":
        return p.throughput
    if metric == "decode_tokens_per_s":
        return 1.0 / p.tpot
    if metric == "request_tokens_per_s":
        return output_tokens / (p.ttft + (output_tokens - 1) * p.tpot)
    raise PredictionError(
        f"metric {metric!r}: accepted: output_tokens_per_s, decode_tokens_per_s, request_tokens_per_s"
    )
