"""`ownllm bench`: sweep concurrency levels against an OpenAI-compatible base URL."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import math
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

DEFAULT_LEVELS = "1,4,16,64"
KEY_ENV = "OWNLLM_API_KEY"
MAX_CONCURRENCY = 1024  # one thread per concurrent client


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "bench",
        help="load-test an OpenAI-compatible API (local or deployed) over concurrency levels",
        description=(
            "Send chat completions at each concurrency level and report requests/s, output tokens/s, "
            "latency p50/p95/p99 and errors by status; saves JSON and a PNG plot. Only the URL you give "
            "is contacted. --calibrate writes the measured speeds into cdk.json for the cost estimate."
        ),
    )
    p.add_argument(
        "url",
        help="base URL an OpenAI client would use, e.g. http://127.0.0.1:8765/v1 (ownllm local) "
        "or https://ID.execute-api.REGION.amazonaws.com/prod/v1",
    )
    p.add_argument("--key", default=os.environ.get(KEY_ENV), help=f"API key (default: ${KEY_ENV})")
    p.add_argument("--model", help="model name to send (default: the first one GET /models lists)")
    p.add_argument(
        "--concurrency",
        default=DEFAULT_LEVELS,
        type=_levels,
        help=f"comma-separated concurrency levels (default {DEFAULT_LEVELS})",
    )
    per = p.add_mutually_exclusive_group()
    per.add_argument("--requests", type=int, help="requests per level")
    per.add_argument("--duration", type=float, help="seconds per level (default 20 when --requests is not given)")
    p.add_argument("--max-tokens", type=int, default=128, help="max_tokens per request (default 128)")
    p.add_argument("--prompt", help="user message to send (default: a short story request)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before one request counts as timed out")
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="requests sent at the highest level before the sweep, not counted: connections and "
        "Lambda cold starts are not what a level should measure (default: one per client; 0: none)",
    )
    p.add_argument("--out", type=Path, default=Path("bench-results"), help="folder for the JSON and PNG")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="write generation_tokens_per_s and instance_tokens_per_s into cdk.json's context.ownllm",
    )
    p.add_argument("--cdk-json", type=Path, default=Path("cdk.json"), help="cdk.json to calibrate (default ./cdk.json)")
    p.add_argument(
        "--instances",
        type=int,
        default=1,
        help="instances that served the sweep, to turn throughput into per-instance figures (default 1)",
    )
    p.set_defaults(func=run)


def _show_requests_done(progress: Progress, task: TaskID, done: int) -> None:
    progress.update(task, completed=done)


def _show_time_spent(progress: Progress, task: TaskID, started: float, duration: float, _done: int) -> None:
    progress.update(task, completed=min(duration, time.monotonic() - started))


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not levels or any(not 1 <= level <= MAX_CONCURRENCY for level in levels):
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more levels, each from 1 to {MAX_CONCURRENCY}")
    return sorted(set(levels))


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ownllm.bench import runner
    from ownllm.bench.calibrate import CalibrationError, calibration_from, check_cdk_json, write_calibration
    from ownllm.bench.report import BenchReport, summarise, table

    # Piped to a file or CI log, rich would assume 80 columns and cut the table.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 132)
    err = Console(stderr=True, highlight=False)
    # A level is either a request count or (the default) a duration.
    requests: int | None = args.requests
    duration: float = 20.0 if args.duration is None else args.duration
    try:
        if requests is not None and requests < 1:
            raise runner.BenchError(f"--requests {requests} must be at least 1")
        if requests is None and not (math.isfinite(duration) and duration > 0):
            raise runner.BenchError(f"--duration {duration:g} must be a finite number greater than 0")
        if args.instances < 1:
            raise runner.BenchError(f"--instances {args.instances} must be at least 1")
        if args.warmup is not None and args.warmup < 0:
            raise runner.BenchError(f"--warmup {args.warmup} must not be negative")
        # The report is written after the sweep: a folder it cannot go in must fail before it.
        if args.out.exists() and not args.out.is_dir():
            raise runner.BenchError(f"--out {str(args.out)!r}: is a file; give a folder (created if missing)")
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise runner.BenchError(
                f"--out {str(args.out)!r}: cannot be the report folder ({exc.strerror or exc}); nothing was sent"
            ) from None
        if args.calibrate:
            try:
                check_cdk_json(args.cdk_json)
            except CalibrationError as exc:
                raise runner.BenchError(f"--calibrate: {exc}; nothing was sent") from None
        target = runner.Target(
            args.url, args.key, args.model or "", args.max_tokens, args.prompt or runner.DEFAULT_PROMPT, args.timeout
        )
        if not target.model:
            target = dataclasses.replace(target, model=runner.discover_model(target))
    except runner.BenchError as exc:
        print(f"ownllm bench: {exc}", file=sys.stderr)  # one line, never wrapped
        return 2
    if not args.key:
        err.print(f"[yellow]no API key given (--key or ${KEY_ENV}); the deployed API will answer 401[/]")

    report = BenchReport(
        args.url,
        target.model,
        target.max_tokens,
        mode="requests" if requests is not None else "duration",
        per_level=requests if requests is not None else duration,
    )
    stop = threading.Event()
    interrupted = False
    backends: set[str] = set()
    try:
        top = max(args.concurrency)
        warmup = top if args.warmup is None else args.warmup
        if warmup > 0:
            warm = runner.run_level(target, min(warmup, top), requests=warmup, stop=stop)
            backends |= warm.backends
        with Progress(
            TextColumn("c={task.fields[concurrency]:>4}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TimeElapsedColumn(),
            console=err,
            disable=args.no_progress,
            transient=False,
        ) as progress:
            for level in args.concurrency:
                if requests is not None:
                    task = progress.add_task("", total=requests, concurrency=level, unit="requests")
                    update = functools.partial(_show_requests_done, progress, task)
                    run_ = runner.run_level(target, level, requests=requests, stop=stop, progress=update)
                else:
                    task = progress.add_task("", total=duration, concurrency=level, unit="seconds")
                    started = time.monotonic()
                    update = functools.partial(_show_time_spent, progress, task, started, duration)
                    run_ = runner.run_level(target, level, duration_s=duration, stop=stop, progress=update)
                backends |= run_.backends
                report.levels.append(summarise(run_))
                if run_.interrupted:
                    interrupted = True
                    break
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
    report.backend = ",".join(sorted(backends)) or None

    console.print(table(report))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    json_path = report.write_json(args.out / f"bench-{stamp}.json")
    console.print(f"report: {json_path}", markup=False)
    if not args.no_plot and report.levels:
        if importlib.util.find_spec("matplotlib") is None:  # a dev extra
            err.print("[yellow]matplotlib is not installed; no plot (pip install matplotlib)[/]")
        else:
            from ownllm.bench.plot import write_plot

            console.print(f"plot:   {write_plot(report, args.out / f'bench-{stamp}.png')}", markup=False)
    if interrupted:
        err.print("[yellow]stopped early; the report covers what ran[/]")
        return 130
    if report.levels and not any(level.ok for level in report.levels):
        err.print("[red]no request succeeded[/] (see errors by status above)")
        return 1
    if args.calibrate:
        try:
            calibration = calibration_from(report, instances=args.instances)
            changes = write_calibration(args.cdk_json, calibration)
        except CalibrationError as exc:
            print(f"ownllm bench: not calibrated: {exc}", file=sys.stderr)
            return 1
        for key, (old, new) in changes.items():
            console.print(f"{args.cdk_json}: context.ownllm.{key}: {old} -> {new}", markup=False)
        console.print(
            f"(generation speed from concurrency {calibration.generation_from_concurrency}; "
            f"throughput from concurrency {calibration.throughput_from_concurrency} over "
            f"{calibration.instances} instance(s)). The next synth's cost estimate uses them.",
            markup=False,
        )
    return 0
