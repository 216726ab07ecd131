"""`ownllm batch estimate`: a batch's tokens, its time and cost on the configured endpoint and on
the cheapest instance types, and the per-token API's bill with and without its batch discount."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ownllm.batch.job import (
    BATCH_DISCOUNT,
    CHEAPEST_SHOWN,
    ApiBill,
    Job,
    JobError,
    RequestPrices,
    Run,
    Serving,
    api_bill,
    default_concurrency,
    instances_within,
    parse_duration_hours,
    request_prices,
    run_cost,
    serving_on,
    servings,
    speed_floor,
)
from ownllm.cost.usage import LAMBDA_OVERHEAD_S

if TYPE_CHECKING:
    from ownllm.batch.estimate import TokenCount
    from ownllm.batch.jsonl import BatchRequest
    from ownllm.perf.models import ModelArch
    from ownllm.settings import Settings

PROG = "ownllm batch estimate"
EXIT_USAGE = 2
DEFAULT_PRECISION = "bf16"
FALLBACK_REGION = "us-east-1"


def add_arguments(e: argparse.ArgumentParser) -> None:
    e.add_argument("input", nargs="?", type=Path, help="the batch input file (JSONL); or give --requests")
    e.add_argument("--requests", help="requests in the job, instead of INPUT")
    e.add_argument("--input-tokens", help="prompt tokens per request (with --requests)")
    e.add_argument("--output-tokens", help="output tokens per request (with --requests)")
    e.add_argument(
        "--within",
        help="finish in this time (24h, 90m, 2d): picks the instance count that does (default: instance_count)",
    )
    e.add_argument(
        "--precision", default=DEFAULT_PRECISION, help="weights: bf16, fp16, fp8, int8 or int4 (default bf16)"
    )
    e.add_argument("--region", help="price catalog region (default: the settings' region, else us-east-1)")
    e.add_argument("--json", action="store_true", help="print the estimate as JSON")
    e.add_argument(
        "--settings",
        help="cdk.json whose 'ownllm' context describes the endpoint and API (default: ./cdk.json if present)",
    )
    e.add_argument(
        "-c", "--context", action="append", default=[], metavar="KEY=VALUE", help="override one setting, as with cdk -c"
    )


@dataclass(frozen=True)
class Estimate:
    job: Job
    count: TokenCount | None  # when counted from a file
    model: str
    precision: str
    engine: str
    region: str
    configured: Run
    cheapest: list[Run]
    api: ApiBill
    prices: RequestPrices
    within_hours: float | None
    max_instances: int
    rate_limit_rps: float
    quota_per_day: int

    @property
    def rate_limit_hours(self) -> float:
        """The least time the usage plan's rate allows the job."""
        return self.job.requests / self.rate_limit_rps / 3600

    @property
    def quota_days(self) -> float:
        return self.job.requests / self.quota_per_day

    @property
    def rate_needed_rps(self) -> int:
        """The usage plan rate that lets the job through as fast as the instances serve it."""
        return math.ceil(self.job.requests / (self.configured.hours * 3600))

    @property
    def quota_needed(self) -> int:
        """The daily quota that lets the job through as fast as the instances serve it."""
        return math.ceil(self.job.requests / max(1.0, self.configured.hours / 24))

    def to_json(self) -> dict[str, object]:
        run = self.configured
        return {
            "requests": self.job.requests,
            "input_tokens": self.job.input_tokens,
            "output_tokens": self.job.output_tokens,
            "model": self.model,
            "precision": self.precision,
            "engine": self.engine,
            "region": self.region,
            "instance_type": run.serving.instance_type,
            "instances": run.instances,
            "hours": run.hours,
            "instance_usd": run.instance_usd,
            "apigateway_usd": run.apigateway_usd,
            "lambda_usd": run.lambda_requests_usd + run.lambda_duration_usd,
            "own_usd": run.own_usd,
            "output_tokens_per_s_per_instance": run.serving.tokens_per_s,
            "concurrency_per_instance": run.serving.concurrency,
            "request_s": run.serving.request_s,
            "within_hours": self.within_hours,
            "max_instances": self.max_instances,
            "exceeds_max_instances": run.instances > self.max_instances,
            "rate_limit_hours": self.rate_limit_hours,
            "quota_days": self.quota_days,
            "api": self.api.label,
            "api_source": self.api.source,
            "api_usd": self.api.usd,
            "api_batch_usd": self.api.batch_usd,
            "batch_discount": BATCH_DISCOUNT,
            "cheapest": [
                {
                    "instance_type": c.serving.instance_type,
                    "instances": c.instances,
                    "hours": c.hours,
                    "instance_usd": c.instance_usd,
                    "own_usd": c.own_usd,
                    "output_tokens_per_s_per_instance": c.serving.tokens_per_s,
                    "hourly_usd": c.serving.hourly_usd,
                    "price_is_estimate": c.serving.price_is_estimate,
                }
                for c in self.cheapest
            ],
        }


def _whole(option: str, value: str | None, minimum: int = 1) -> int:
    try:
        n = int(value) if value is not None else None
    except ValueError:
        n = None
    if n is None or n < minimum:
        raise JobError(f"{option} {value!r}: must be a whole number >= {minimum}")
    return n


def _job(args: argparse.Namespace, settings: Settings) -> tuple[Job, TokenCount | None]:
    """The job from INPUT (counted) or from --requests/--input-tokens/--output-tokens. BatchFileError or JobError."""
    numbers = {"--requests": args.requests, "--input-tokens": args.input_tokens, "--output-tokens": args.output_tokens}
    if args.input is not None:
        given = [name for name, value in numbers.items() if value is not None]
        if given:
            raise JobError(f"{given[0]}: give INPUT or --requests N --input-tokens I --output-tokens O, not both")
        from ownllm.batch.estimate import count_tokens
        from ownllm.batch.jsonl import load_requests

        count = count_tokens(load_requests(args.input), settings.default_max_tokens, settings.max_request_bytes)
        if count.requests == 0:
            raise JobError(f"INPUT {str(args.input)!r}: holds no requests")
        if count.served == 0:
            raise JobError(f"INPUT {str(args.input)!r}: the API would refuse every request ({_refusals(count)})")
        return Job(count.served, count.input_tokens, count.output_tokens_max), count
    if args.requests is None:
        raise JobError("INPUT: give a batch input file, or --requests N --input-tokens I --output-tokens O")
    for name, value in numbers.items():
        if value is None:
            raise JobError(f"{name}: required with --requests (tokens per request)")
    requests = _whole("--requests", args.requests)
    per_in = _whole("--input-tokens", args.input_tokens)
    per_out = _whole("--output-tokens", args.output_tokens)
    return Job(requests, requests * per_in, requests * per_out), None


def _model(settings: Settings) -> ModelArch:
    from ownllm.perf.models import ModelError, resolve

    try:
        return resolve(settings.served_model_name, size_b=settings.model_size_b)
    except ModelError:  # not in the table: a model of the settings' size (a Llama-shaped guess)
        return resolve(settings.served_model_name, size_b=settings.resolved_model_size_b)


def build(args: argparse.Namespace, settings: Settings) -> Estimate:
    """Everything the estimate prints. BatchFileError or JobError."""
    from ownllm.cost.breakeven import api_price
    from ownllm.cost.catalog import load_catalog
    from ownllm.perf.predict import PRECISIONS

    job, count = _job(args, settings)
    within = parse_duration_hours(args.within) if args.within is not None else None
    precision = args.precision.strip().lower()
    if precision not in PRECISIONS:
        raise JobError(f"--precision {args.precision!r}: accepted: {', '.join(PRECISIONS)}")
    catalog = load_catalog()
    region = args.region or settings.region or FALLBACK_REGION
    if region not in catalog.regions:
        raise JobError(f"--region {region!r}: the price catalog has {', '.join(catalog.regions)}")
    model = _model(settings)
    fitting, unfit = servings(
        model,
        job,
        catalog,
        region,
        precision=precision,
        engine=settings.engine,
        max_batch=settings.max_batch_size,
        lambda_timeout_s=settings.lambda_timeout_s,
    )
    configured = next((s for s in fitting if s.instance_type == settings.instance_type), None)
    if configured is None:
        reason = next(
            (o.note for o in unfit if o.instance_type == settings.instance_type), "has no price in the catalog"
        )
        if reason.startswith("slower than"):  # plan's note when no concurrency meets the speed floor
            reason = (
                f"a {job.mean_output}-token answer must end inside the {settings.lambda_timeout_s} s buffered-answer budget "
                f"(lambda_timeout_s), which takes {speed_floor(job, settings.lambda_timeout_s):.1f} tokens/s per "
                "request, and the performance model predicts less; ask for fewer output tokens"
            )
        raise JobError(
            f"instance_type {settings.instance_type!r} cannot serve this job ({model.name}, {precision}, "
            f"{job.mean_input} in / {job.mean_output} out): {reason}"
        )
    prices = request_prices(catalog, region, settings.lambda_memory_mb, settings.lambda_timeout_s)

    def count_for(serving: Serving) -> int:
        return instances_within(job, serving, within) if within is not None else settings.instance_count

    return Estimate(
        job=job,
        count=count,
        model=model.name,
        precision=precision,
        engine=settings.engine,
        region=region,
        configured=run_cost(job, configured, count_for(configured), prices),
        cheapest=[run_cost(job, s, count_for(s), prices) for s in fitting[:CHEAPEST_SHOWN]],
        api=api_bill(job, api_price(settings, catalog)),
        prices=prices,
        within_hours=within,
        max_instances=settings.max_instances,
        rate_limit_rps=settings.api_rate_limit_rps,
        quota_per_day=settings.api_quota_per_day,
    )


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def _price(value: float) -> str:
    from ownllm.cost.model import price_text

    return price_text(value)


def render(e: Estimate) -> list[str]:
    """The estimate as text lines (stdout)."""
    job, run, p = e.job, e.configured, e.prices
    s = run.serving
    lines: list[str] = []
    if e.count is not None:
        c = e.count
        lines += [
            f"requests       {c.requests}",
            f"input tokens   {c.input_tokens}  (estimated as the forwarder does: about 4 bytes of text per token "
            "plus a few per chat message)",
            f"output tokens  at most {c.output_tokens_max}  ({c.served - c.defaulted} with "
            f"their own max_tokens; {c.defaulted} at default_max_tokens {c.default_max_tokens}"
            + (f"; {c.refused} refused" if c.refused else "")
            + ")",
        ]
    else:
        lines += [
            f"requests       {job.requests}",
            f"input tokens   {job.input_tokens}  ({job.mean_input} per request)",
            f"output tokens  {job.output_tokens}  ({job.mean_output} per request)",
        ]
    lines += [
        "",
        f"On the configured endpoint: {run.instances} x {s.instance_type}, {e.model} ({e.precision}, {e.engine}), "
        f"{e.region}",
        f"  throughput   {s.tokens_per_s:,.0f} output tokens/s per instance at {s.concurrency} requests in flight "
        f"(predicted; {job.mean_input} in / {job.mean_output} out per request, each taking {s.request_s:.1f} s, "
        f"inside the {p.lambda_timeout_s:g} s buffered-answer budget)",
        f"  time         {run.hours:,.1f} h  ({job.output_tokens:,} output tokens / ({run.instances} x "
        f"{s.tokens_per_s:,.0f} tokens/s))",
        f"  instances    {_usd(run.instance_usd)}  ({run.instances} x {run.hours:,.1f} h x {_price(s.hourly_usd)}/h"
        f"{', an unconfirmed price' if s.price_is_estimate else ''})",
        f"  API Gateway  {_usd(run.apigateway_usd)}  ({job.requests:,} REST requests x {_price(p.apigateway_usd_per_m)}/1M)",
        f"  Lambda       {_usd(run.lambda_requests_usd + run.lambda_duration_usd)}  ({job.requests:,} requests x "
        f"{_price(p.lambda_usd_per_m)}/1M + {run.lambda_s:.1f} s x {p.lambda_memory_mb / 1024:g} GB x "
        f"{_price(p.lambda_usd_per_gb_s)}/GB-s each)",
        f"  total        {_usd(run.own_usd)}",
    ]
    if e.within_hours is not None and run.instances > e.max_instances:
        lines.append(
            f"  --within {e.within_hours:g} h needs {run.instances} instances, above max_instances "
            f"{e.max_instances}: raise max_instances (and instance_count) in cdk.json for this job"
        )
    if e.rate_limit_hours > run.hours:
        lines.append(
            f"  api_rate_limit_rps {e.rate_limit_rps:g} lets this job through in no less than "
            f"{e.rate_limit_hours:,.1f} h: raise it to {e.rate_needed_rps:,} or more for this job"
        )
    if e.quota_needed > e.quota_per_day:
        lines.append(
            f"  api_quota_per_day {e.quota_per_day:,} spreads this job over {e.quota_days:,.1f} days: raise it to "
            f"{e.quota_needed:,} or more for this job"
        )
    lines += ["", "Cheapest instance types for this job:"]
    for option in e.cheapest:
        lines.append(
            f"  {option.serving.instance_type:<16} {option.instances} x {option.hours:,.1f} h  "
            f"instances {_usd(option.instance_usd)}, "
            f"total {_usd(option.own_usd)}  ({option.serving.tokens_per_s:,.0f} tokens/s per instance at "
            f"{_price(option.serving.hourly_usd)}/h{', an unconfirmed price' if option.serving.price_is_estimate else ''})"
        )
    a = e.api
    lines += [
        "",
        f"Per-token API: {a.label} ({_price(a.input_usd_per_m)}/1M in, {_price(a.output_usd_per_m)}/1M out)",
        f"  on demand    {_usd(a.usd)}",
        f"  batch        {_usd(a.batch_usd)}  ({BATCH_DISCOUNT:.0%} batch discount, as OpenAI and Amazon Bedrock "
        "publish for their batch APIs)",
        "",
        "Throughput predicted by the calibrated performance model (docs/performance.md), not measured; instance "
        "hours exclude the endpoint's start-up. Prices: " + "; ".join(p.sources + (f"API: {a.source}",)),
    ]
    return lines


def main(args: argparse.Namespace) -> int:
    from ownllm.batch.jsonl import MAX_PROBLEMS_SHOWN, BatchFileError
    from ownllm.settings import SettingsError, load_settings, named_cdk_json, parse_overrides

    try:
        settings = load_settings(named_cdk_json(args.settings), parse_overrides(args.context))
        estimate = build(args, settings)
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"{PROG}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except BatchFileError as exc:
        for problem in exc.problems[:MAX_PROBLEMS_SHOWN]:
            print(f"{PROG}: {problem}", file=sys.stderr)
        if len(exc.problems) > MAX_PROBLEMS_SHOWN:
            print(f"{PROG}: ... and {len(exc.problems) - MAX_PROBLEMS_SHOWN} more", file=sys.stderr)
        return EXIT_USAGE
    except (JobError, ValueError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(estimate.to_json(), indent=2))
    else:
        print("\n".join(render(estimate)))
    count = estimate.count
    if count is not None and count.unreadable:
        print(
            f"{PROG}: {count.unreadable} request(s) have no prompt the API can read "
            "(messages or prompt missing or of the wrong shape); their input is not counted and the API will "
            "refuse them",
            file=sys.stderr,
        )
    if count is not None and count.refused:
        print(f"{PROG}: the API will refuse {_refusals(count)}, so they are not counted", file=sys.stderr)
    return 0


def _refusals(count: TokenCount) -> str:
    """'1 request(s) setting max_tokens ... and 2 over max_request_bytes 262144': what the API refuses."""
    parts = []
    if count.bad_max_tokens:
        parts.append(
            f"{count.bad_max_tokens} request(s) setting max_tokens (or max_completion_tokens) to something other "
            "than a whole number of at least 1"
        )
    if count.too_large:
        parts.append(
            f"{count.too_large} request(s) whose body is over max_request_bytes {count.max_request_bytes} "
            "(answered 413)"
        )
    return " and ".join(parts)


def run_concurrency(settings: Settings, requests: list[BatchRequest], max_concurrency: int) -> tuple[int, str]:
    """`batch run`'s default --concurrency and why: the configured endpoint's saturation concurrency
    (performance model, this file's mean request) x instance_count, capped by what the usage plan's
    rate keeps busy."""
    from ownllm.batch.defaults import DEFAULT_CONCURRENCY
    from ownllm.batch.estimate import count_tokens
    from ownllm.perf.predict import PredictionError

    count = count_tokens(requests, settings.default_max_tokens, settings.max_request_bytes)
    if count.served == 0:
        return DEFAULT_CONCURRENCY, f"the fixed default (the API would refuse every request: {_refusals(count)})"
    job = Job(count.served, count.input_tokens, count.output_tokens_max)
    try:
        serving = serving_on(
            _model(settings),
            settings.instance_type,
            job,
            precision=DEFAULT_PRECISION,
            engine=settings.engine,
            max_batch=settings.max_batch_size,
            lambda_timeout_s=settings.lambda_timeout_s,
        )
    except PredictionError as exc:
        return DEFAULT_CONCURRENCY, f"the fixed default (the performance model cannot size this job: {exc})"
    if serving is None:
        return DEFAULT_CONCURRENCY, (
            f"the fixed default ({settings.model_id} on {settings.instance_type} keeps no request of "
            f"{job.mean_input} in / {job.mean_output} out inside the {settings.lambda_timeout_s} s buffered-answer budget)"
        )
    n = settings.instance_count
    concurrency = default_concurrency(serving, n, settings.api_rate_limit_rps, max_concurrency)
    why = (
        f"{serving.concurrency} in flight per instance saturate {settings.instance_type} for {settings.model_id} at "
        f"{job.mean_input} in / {job.mean_output} out (performance model) x instance_count {n}"
    )
    if concurrency < serving.concurrency * n:
        why += (
            f", capped by api_rate_limit_rps {settings.api_rate_limit_rps:g} x "
            f"{serving.request_s + LAMBDA_OVERHEAD_S:.1f} s per request"
        )
    return concurrency, why + "; --concurrency to override"
