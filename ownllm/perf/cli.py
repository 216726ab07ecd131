"""`ownllm capacity` (what one instance serves) and `ownllm plan` (which instance, how many, at what cost)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

CAPACITY_JSON_KEYS = (
    "fits",
    "max_concurrency",
    "time_to_first_token_s",
    "per_request_tokens_per_s",
    "output_tokens_per_s",
    "saturation_concurrency",
    "saturation_output_tokens_per_s",
    "gpu",
    "gpu_count",
    "model_params_b",
    "weights_gib",
    "kv_cache_gib",
)


class InputError(Exception):
    """Bad command-line input: one line naming the option, the value and what is accepted."""


def register(subparsers: Any) -> None:
    cap = subparsers.add_parser(
        "capacity", help="predict what one instance serves for a model (speed, throughput, fit)"
    )
    cap.add_argument("--instance-type", help="SageMaker instance type, e.g. ml.g5.2xlarge")
    cap.add_argument(
        "--gpu", help="GPU name instead of an instance type: t4, a10g, l4, l40s, a100-40gb, a100-80gb, h100, h200"
    )
    cap.add_argument("--gpu-count", help="GPUs with --gpu (tensor parallel), default 1")
    _model_args(cap)
    cap.add_argument("--concurrency", default="1", help="requests in flight (closed loop), default 1")
    cap.add_argument("--json", action="store_true", help="print the prediction as JSON")
    cap.set_defaults(func=cmd_capacity)

    pl = subparsers.add_parser("plan", help="rank every priced instance type for a model and a traffic, cheapest first")
    _model_args(pl)
    pl.add_argument("--requests-per-day", default="1000", help="requests a day (default 1000)")
    pl.add_argument("--active-hours", default="24", help="hours a day the requests arrive in (default 24)")
    pl.add_argument("--min-tokens-per-s", default="20", help="per-request speed floor, tokens/s (default 20)")
    pl.add_argument("--region", default="us-east-1", help="price catalog region (default us-east-1)")
    pl.add_argument("--prices", help="price catalog CSV (default: the bundled one)")
    pl.add_argument("--json", action="store_true", help="print the ranking as JSON")
    pl.add_argument("--apply", action="store_true", help="write the cheapest fitting option into --settings")
    pl.add_argument("--settings", default="cdk.json", help="cdk.json to update with --apply (default ./cdk.json)")
    pl.set_defaults(func=cmd_plan)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="", help="Hugging Face model id, e.g. Qwen/Qwen2.5-7B-Instruct")
    p.add_argument("--model-size-b", help="parameters in billions (overrides the table; required for unknown models)")
    p.add_argument("--model-config", help="a local config.json describing the model's architecture")
    p.add_argument("--precision", default="bf16", help="bf16, fp16, fp8, int8 or int4 (default bf16)")
    p.add_argument("--engine", default="vllm", help="vllm, lmi or tgi (default vllm)")
    p.add_argument("--kv-cache-dtype", default="auto", help="auto (16-bit) or fp8 (default auto)")
    p.add_argument("--max-batch-size", help="sequences the engine batches at most (default: the engine's own)")
    p.add_argument("--input-tokens", default="512", help="prompt tokens per request (default 512)")
    p.add_argument("--output-tokens", default="256", help="generated tokens per request (default 256)")


def _number(
    option: str, value: str, kind: type[int] | type[float] = int, minimum: float = 1, maximum: float | None = None
) -> Any:
    try:
        n = kind(value)
    except (TypeError, ValueError):
        n = None
    if n is None or not math.isfinite(n) or n < minimum or (maximum is not None and n > maximum):
        what = "a whole number" if kind is int else "a number"
        limits = f">= {minimum:g}" if maximum is None else f"from {_plain(minimum)} to {_plain(maximum)}"
        raise InputError(f"{option} {value!r}: must be {what} {limits}")
    return n


def _plain(value: float) -> str:
    """2147483647, not 2.14748e+09."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _model(args: argparse.Namespace) -> Any:
    from ownllm.perf.models import ModelError, resolve
    from ownllm.settings import MAX_MODEL_SIZE_B, MIN_MODEL_SIZE_B

    size = (
        _number("--model-size-b", args.model_size_b, float, MIN_MODEL_SIZE_B, MAX_MODEL_SIZE_B)
        if args.model_size_b
        else None
    )
    if not (args.model or size or args.model_config):
        raise InputError("--model: required (a Hugging Face id), or give --model-size-b or --model-config")
    try:
        return resolve(args.model, size_b=size, config_path=args.model_config)
    except ModelError as exc:
        raise InputError(str(exc)) from exc


def _check_context(model: Any, input_tokens: int, output_tokens: int) -> None:
    """A request longer than the model's context window: no engine serves it, so nothing to predict."""
    if model.context_known and input_tokens + output_tokens > model.context:
        raise InputError(
            f"--input-tokens {input_tokens} + --output-tokens {output_tokens}: above the {model.context}-token "
            f"context of {model.name} (max_position_embeddings); no engine serves a request that long"
        )


def _check_choice(option: str, value: str, accepted: list[str]) -> str:
    if value.strip().lower() not in accepted:
        raise InputError(f"{option} {value!r}: accepted: {', '.join(accepted)}")
    return value.strip().lower()


def _fail(command: str, exc: Exception) -> int:
    print(f"ownllm {command}: {exc}", file=sys.stderr)
    return 2


def cmd_capacity(args: argparse.Namespace) -> int:
    try:
        return _capacity(args)
    except InputError as exc:
        return _fail("capacity", exc)


def _capacity(args: argparse.Namespace) -> int:
    from ownllm.perf.hardware import GPUS, HardwareError, for_gpu, for_instance
    from ownllm.perf.predict import ENGINES, KV_CACHE_DTYPES, PRECISIONS, PredictionError, predict

    precision = _check_choice("--precision", args.precision, list(PRECISIONS))
    kv_cache = _check_choice("--kv-cache-dtype", args.kv_cache_dtype, list(KV_CACHE_DTYPES))
    engine = _check_choice("--engine", args.engine, list(ENGINES))
    max_batch = _number("--max-batch-size", args.max_batch_size) if args.max_batch_size else None
    input_tokens = _number("--input-tokens", args.input_tokens)
    output_tokens = _number("--output-tokens", args.output_tokens)
    concurrency = _number("--concurrency", args.concurrency)
    try:
        if args.instance_type and args.gpu:
            raise InputError("--gpu: give either --instance-type or --gpu, not both")
        if args.gpu_count is not None and not args.gpu:
            raise InputError(
                f"--gpu-count {args.gpu_count!r}: goes with --gpu NAME; an --instance-type has its own GPU count"
            )
        if args.gpu:
            _check_choice("--gpu", args.gpu, list(GPUS))
            hw = for_gpu(args.gpu, _number("--gpu-count", args.gpu_count or "1"))
        elif args.instance_type:
            hw = for_instance(args.instance_type)
        else:
            raise InputError("--instance-type: required (e.g. ml.g5.2xlarge), or --gpu NAME --gpu-count N")
        model = _model(args)
        _check_context(model, input_tokens, output_tokens)
        p = predict(
            model,
            hw,
            precision,
            engine,
            input_tokens,
            output_tokens,
            concurrency,
            kv_cache=kv_cache,
            max_batch=max_batch,
        )
    except (HardwareError, PredictionError) as exc:
        raise InputError(str(exc)) from exc
    if args.json:
        data = p.to_json()
        print(json.dumps({k: data[k] for k in CAPACITY_JSON_KEYS}, indent=2))
        return 0
    _render_capacity(model, hw, precision, engine, input_tokens, output_tokens, concurrency, p)
    return 0


def _render_capacity(
    model: Any, hw: Any, precision: str, engine: str, inp: int, out: int, concurrency: int, p: Any
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{model.name} on {hw.label}, {precision}, {engine}: {inp} in / {out} out tokens")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("fits", "yes" if p.fits else f"no: {p.reason}")
    table.add_row("weights", f"{p.weights_gib:.1f} GiB")
    table.add_row("KV cache pool", f"{p.kv_cache_gib:.1f} GiB")
    if p.fits:
        table.add_row("requests the KV cache holds", str(p.max_concurrency))
        table.add_row(f"time to first token at {concurrency}", f"{p.time_to_first_token_s:.2f} s")
        table.add_row(f"speed per request at {concurrency}", f"{p.per_request_tokens_per_s:.1f} tokens/s")
        table.add_row(f"output throughput at {concurrency}", f"{p.output_tokens_per_s:.0f} tokens/s")
        table.add_row(
            "saturation", f"{p.saturation_output_tokens_per_s:.0f} tokens/s at {p.saturation_concurrency} in flight"
        )
    console = Console()
    console.print(table)
    console.print("Predicted by the calibrated roofline model (docs/performance.md); not measured.")
    console.print(f"Model facts: {model.source}")
    console.print(f"GPU facts: {hw.gpu.source}")


def cmd_plan(args: argparse.Namespace) -> int:
    try:
        return _plan(args)
    except InputError as exc:
        return _fail("plan", exc)


def _plan(args: argparse.Namespace) -> int:
    from ownllm.cost.catalog import CatalogError, load_catalog
    from ownllm.perf import plan as planner
    from ownllm.perf.predict import ENGINES, KV_CACHE_DTYPES, PRECISIONS

    precision = _check_choice("--precision", args.precision, list(PRECISIONS))
    kv_cache = _check_choice("--kv-cache-dtype", args.kv_cache_dtype, list(KV_CACHE_DTYPES))
    engine = _check_choice("--engine", args.engine, list(ENGINES))
    max_batch = _number("--max-batch-size", args.max_batch_size) if args.max_batch_size else None
    from ownllm.settings import INT32_MAX, MAX_TOKENS_PER_S

    traffic = planner.Traffic(  # the bounds settings put on requests_per_day and min_tokens_per_s_per_request
        requests_per_day=_number("--requests-per-day", args.requests_per_day, float, 0, INT32_MAX),
        input_tokens=_number("--input-tokens", args.input_tokens),
        output_tokens=_number("--output-tokens", args.output_tokens),
        active_hours=_number("--active-hours", args.active_hours, float, 0.01),
        min_tokens_per_s=_number("--min-tokens-per-s", args.min_tokens_per_s, float, 0, MAX_TOKENS_PER_S),
    )
    if traffic.active_hours > 24:
        raise InputError(f"--active-hours {args.active_hours!r}: must be at most 24")
    model = _model(args)
    _check_context(model, traffic.input_tokens, traffic.output_tokens)
    try:
        catalog = load_catalog(args.prices)
    except CatalogError as exc:  # names the file and the line
        raise InputError(f"--prices: {exc}") from exc
    if args.region not in catalog.regions:
        raise InputError(f"--region {args.region!r}: accepted: {', '.join(catalog.regions)}")
    options = planner.plan(
        model, traffic, catalog, args.region, precision, engine, kv_cache=kv_cache, max_batch=max_batch
    )
    try:
        api = planner.api_option(model, traffic, catalog)
    except ValueError:
        api = None
    applied: dict[str, object] = {}
    chosen = next((o for o in options if o.fits), None)
    if args.apply:
        if chosen is None:
            raise InputError(f"--apply: no instance type fits {model.name} at {args.min_tokens_per_s} tokens/s")
        try:
            applied = planner.apply(chosen, Path(args.settings), model_id=args.model or None)
        except planner.ApplyError as exc:
            raise InputError(f"--settings {args.settings!r}: {exc}; nothing written") from None
    if args.json:
        print(json.dumps(planner.to_json(options, api), indent=2, default=str))
    else:
        _render_plan(model.name, traffic, options, api)
    if applied:
        print(f"wrote {', '.join(f'{k}={v}' for k, v in applied.items())} into {args.settings}", file=sys.stderr)
    return 0


def _render_plan(model: str, traffic: Any, options: list[Any], api: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    title = (
        f"{model}: {traffic.requests_per_day:,.0f} requests/day over {traffic.active_hours:g} h, "
        f"{traffic.input_tokens} in / {traffic.output_tokens} out, >= {traffic.min_tokens_per_s:g} tokens/s each"
    )
    table = Table(title=title)
    for col in (
        "instance",
        "GPUs",
        "count",
        "$/day",
        "$/day at 0",
        "$/1M out",
        "out tok/s per instance",
        "headroom",
        "note",
    ):
        table.add_column(col, justify="left" if col in ("instance", "note") else "right")
    for o in options:
        if o.fits:
            table.add_row(
                o.instance_type,
                f"{o.gpu_count} x {o.gpu}",
                str(o.instances),
                f"{o.daily_usd:,.2f}",
                f"{o.scale_to_zero_daily_usd:,.2f}",
                f"{o.usd_per_1m_output_tokens:,.2f}",
                f"{o.instance_output_tokens_per_s:,.0f}",
                f"{o.headroom:.0%}",
                o.note,
            )
        else:
            table.add_row(o.instance_type, f"{o.gpu_count} x {o.gpu}", "-", "-", "-", "-", "-", "-", o.note)
    if api is not None:
        table.add_row(
            api.label,
            "per token",
            "-",
            f"{api.daily_usd:,.2f}",
            "-",
            f"{api.usd_per_1m_output_tokens:,.2f}",
            "-",
            "-",
            "API",
        )
    console = Console(width=max(Console().width, 130))
    console.print(table)
    console.print(
        "Instances billed 24 h a day; '$/day at 0' is the same fleet with min_instances 0 (scale to zero: idle "
        "tails and wakes priced, ownllm/scale_to_zero.py); throughput predicted by the calibrated model "
        "(docs/performance.md)."
    )
