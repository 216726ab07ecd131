"""`ownllm batch run`: an OpenAI Batch API input file sent to an ownllm API (or any
OpenAI-compatible server), results in OpenAI's batch output format, resumable after any crash."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ownllm.urls import is_http_url

if TYPE_CHECKING:
    from ownllm.batch.jsonl import BatchRequest, ResultFileState, ResultWriter
    from ownllm.batch.run import Options, Result, Stats
    from ownllm.settings import Settings

KEY_ENV = "OWNLLM_API_KEY"
MAX_CONCURRENCY = 1024
HTTPX2_PIN = "httpx2==2.16.2"  # the version openai==3.52.0 brings in the dev extra
EXIT_FAILED_REQUESTS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad option or file, said in one line."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    batch = subparsers.add_parser(
        "batch",
        help="run an OpenAI Batch API input file (JSONL) against your API",
        description="Run OpenAI Batch API files against an OpenAI-compatible API: ownllm's, local or deployed.",
    )
    sub = batch.add_subparsers(dest="batch_command", required=True, metavar="BATCH_COMMAND")
    from ownllm.batch.defaults import (
        BACKOFF_BASE_S,
        BACKOFF_CAP_S,
        DEFAULT_CONCURRENCY,
        DEFAULT_MAX_ATTEMPTS,
        DEFAULT_STARTUP_WAIT_S,
        DEFAULT_TIMEOUT_S,
    )

    p = sub.add_parser(
        "run",
        help="send every request in INPUT and write OpenAI-format results; rerun to resume",
        description=(
            "Send every line of an OpenAI Batch API input file ({custom_id, method, url, body}) and write one "
            "OpenAI batch output line per request: successes to --output, failures to --errors. The input is "
            "checked whole first; nothing is sent if any line is bad. Killed at any point, the same command "
            "resumes: requests with a result are skipped, each custom_id gets exactly one result line."
        ),
    )
    p.add_argument("input", type=Path, help="the batch input file (JSONL)")
    p.add_argument(
        "--url",
        required=True,
        help="base URL an OpenAI client would use, e.g. http://127.0.0.1:8765/v1 (ownllm local) or "
        "https://ID.execute-api.REGION.amazonaws.com/prod/v1; a line's url /v1/chat/completions is "
        "appended without repeating /v1",
    )
    p.add_argument("--output", required=True, type=Path, help="results of successful requests (JSONL, appended)")
    p.add_argument(
        "--errors", type=Path, help="results of failed requests (JSONL, appended; default: OUTPUT's name + .errors)"
    )
    p.add_argument("--key", default=os.environ.get(KEY_ENV), help=f"API key (default: ${KEY_ENV})")
    p.add_argument(
        "--concurrency",
        type=int,
        help="requests in flight at once (default: the performance model's saturation concurrency for the "
        "configured endpoint and this file's mean request, x instance_count, capped by what api_rate_limit_rps "
        f"keeps busy; {DEFAULT_CONCURRENCY} when the model cannot size it)",
    )
    p.add_argument(
        "--settings",
        help="cdk.json describing the endpoint, for the default --concurrency (default: ./cdk.json if present)",
    )
    p.add_argument(
        "-c", "--context", action="append", default=[], metavar="KEY=VALUE", help="override one setting, as with cdk -c"
    )
    p.add_argument(
        "--max-rps",
        type=float,
        help="at most this many requests started per second (default: no limit). Against a deployed API, keep "
        "it at or under its usage plan's rate: api_rate_limit_rps in cdk.json's context.ownllm",
    )
    p.add_argument(
        "--max-attempts",
        type=int,
        default=DEFAULT_MAX_ATTEMPTS,
        help=f"tries per request on 429/503/504 or no answer, before it goes to --errors (default {DEFAULT_MAX_ATTEMPTS})",
    )
    p.add_argument(
        "--backoff",
        type=float,
        default=BACKOFF_BASE_S,
        help=f"seconds: a retry waits a random time up to this, doubling per retry up to {BACKOFF_CAP_S:g} s, "
        f"and never less than the server's Retry-After (default {BACKOFF_BASE_S:g})",
    )
    p.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help=f"seconds per try (default {DEFAULT_TIMEOUT_S:g})"
    )
    p.add_argument(
        "--startup-wait",
        type=float,
        default=DEFAULT_STARTUP_WAIT_S,
        help="seconds to keep waiting while the endpoint says it is starting (503 model_starting or "
        "model_not_ready), "
        f"without using up attempts (default {DEFAULT_STARTUP_WAIT_S:g})",
    )
    p.add_argument(
        "--cost-per-request",
        type=float,
        help="USD per request, to show the cost so far (default: none; tokens are shown, no cost)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI); the summary still prints")
    p.set_defaults(func=run)

    e = sub.add_parser(
        "estimate",
        help="a batch's tokens, its time and cost on your endpoint and the cheapest instances, and the API's bill",
        description=(
            "Count INPUT's tokens as the forwarder does (or take --requests, --input-tokens, --output-tokens), then "
            "predict the job's time and cost on the configured endpoint (cdk.json) with the performance model, on "
            "the cheapest instance types, and what a per-token API bills for it, with and without a batch discount."
        ),
    )
    from ownllm.batch.estimate_cli import add_arguments

    add_arguments(e)
    e.set_defaults(func=estimate)


@dataclass(frozen=True)
class Plan:
    requests: list[BatchRequest]
    todo: list[BatchRequest]
    output: ResultWriter
    errors: ResultWriter
    output_state: ResultFileState
    errors_state: ResultFileState

    @property
    def already_ok(self) -> int:
        return len(self.output_state.done)

    @property
    def already_failed(self) -> int:
        return len(self.errors_state.done)


def default_errors_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}.errors{output.suffix or '.jsonl'}")


def options_from(args: argparse.Namespace) -> Options:
    from ownllm.batch.defaults import DEFAULT_CONCURRENCY
    from ownllm.batch.run import Options

    if not is_http_url(args.url):
        raise UsageError(
            f"--url {args.url!r} must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8765/v1"
        )
    if args.concurrency is not None and not 1 <= args.concurrency <= MAX_CONCURRENCY:
        raise UsageError(f"--concurrency {args.concurrency} must be from 1 to {MAX_CONCURRENCY}")
    for option, value in (
        ("--max-rps", args.max_rps),
        ("--backoff", args.backoff),
        ("--timeout", args.timeout),
        ("--startup-wait", args.startup_wait),
        ("--cost-per-request", args.cost_per_request),
    ):
        if value is not None and not math.isfinite(value):
            raise UsageError(f"{option} {value:g} must be a finite number")
    if args.max_attempts < 1:
        raise UsageError(f"--max-attempts {args.max_attempts} must be at least 1")
    if args.max_rps is not None and not args.max_rps > 0:
        raise UsageError(f"--max-rps {args.max_rps:g} must be greater than 0")
    if not args.backoff >= 0:
        raise UsageError(f"--backoff {args.backoff:g} must not be negative")
    if not args.timeout > 0:
        raise UsageError(f"--timeout {args.timeout:g} must be greater than 0")
    if not args.startup_wait >= 0:
        raise UsageError(f"--startup-wait {args.startup_wait:g} must not be negative")
    if args.cost_per_request is not None and not args.cost_per_request >= 0:
        raise UsageError(f"--cost-per-request {args.cost_per_request:g} must not be negative")
    return Options(
        base_url=args.url,
        api_key=args.key or None,
        concurrency=args.concurrency or DEFAULT_CONCURRENCY,
        max_attempts=args.max_attempts,
        max_rps=args.max_rps,
        timeout_s=args.timeout,
        startup_wait_s=args.startup_wait,
        backoff_base_s=args.backoff,
    )


def check_paths(input_: Path, output: Path, errors: Path) -> None:
    seen: dict[Path, str] = {}
    for name, path in {"INPUT": input_, "--output": output, "--errors": errors}.items():
        resolved = path.resolve()
        if resolved in seen:
            raise UsageError(f"{name} {path} is the same file as {seen[resolved]}; give three different files")
        seen[resolved] = name


def plan_from(input_: Path, output: Path, errors: Path) -> Plan:
    """Everything checked before a byte is sent; BatchFileError or UsageError.

    The input is checked before any file is made. Then both result files are opened and locked,
    and read: a refusal from here on takes back the files this run created.
    """
    from ownllm.batch.jsonl import ResultWriter, check_results_match, load_requests

    check_paths(input_, output, errors)
    requests = load_requests(input_)
    writers: list[ResultWriter] = []
    try:
        writers.append(ResultWriter(output))
        writers.append(ResultWriter(errors))
        output_writer, errors_writer = writers
        output_state, errors_state = output_writer.state(), errors_writer.state()
        check_results_match(requests, output, output_state, errors, errors_state)
    except BaseException:
        for writer in writers:
            writer.close(remove_if_created=True)
        raise
    done = output_state.done.keys() | errors_state.done.keys()
    todo = [r for r in requests if r.custom_id not in done]
    return Plan(requests, todo, output_writer, errors_writer, output_state, errors_state)


def _settings(args: argparse.Namespace) -> Settings:
    """The settings that size the default concurrency; UsageError naming the problem."""
    from ownllm.settings import SettingsError, load_settings, named_cdk_json, parse_overrides

    try:
        return load_settings(named_cdk_json(args.settings), parse_overrides(args.context))
    except SettingsError as exc:
        raise UsageError("; ".join(exc.problems)) from None


def run(args: argparse.Namespace) -> int:
    from ownllm.batch.jsonl import BatchFileError

    def fail(message: str) -> int:
        print(f"ownllm batch run: {message}", file=sys.stderr)  # one line each, never wrapped
        return EXIT_USAGE

    try:
        import httpx2  # noqa: F401 - checked here so a missing client is one line, not a traceback
    except ModuleNotFoundError:
        return fail(f"needs the httpx2 HTTP client: pip install '{HTTPX2_PIN}'")
    errors_path = args.errors or default_errors_path(args.output)
    try:
        options = options_from(args)
        settings = _settings(args) if args.concurrency is None else None
        plan = plan_from(args.input, args.output, errors_path)
    except KeyboardInterrupt:
        print("ownllm batch run: stopped while checking the files; nothing was sent", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        return fail(str(exc))
    except OSError as exc:  # a result file that cannot be made: no folder, no permission
        return fail(f"cannot open {exc.filename}: {exc.strerror}; nothing was sent")
    except BatchFileError as exc:
        from ownllm.batch.jsonl import MAX_PROBLEMS_SHOWN

        for problem in exc.problems[:MAX_PROBLEMS_SHOWN]:
            print(f"ownllm batch run: {problem}", file=sys.stderr)
        if len(exc.problems) > MAX_PROBLEMS_SHOWN:
            print(f"ownllm batch run: ... and {len(exc.problems) - MAX_PROBLEMS_SHOWN} more", file=sys.stderr)
        print("ownllm batch run: nothing was sent", file=sys.stderr)
        return EXIT_USAGE
    if settings is not None:
        from dataclasses import replace

        from ownllm.batch.estimate_cli import run_concurrency

        concurrency, why = run_concurrency(settings, plan.requests, MAX_CONCURRENCY)
        options = replace(options, concurrency=concurrency)
        print(f"ownllm batch run: concurrency {concurrency}: {why}", file=sys.stderr)
    return _execute(args, options, plan)


def estimate(args: argparse.Namespace) -> int:
    from ownllm.batch.estimate_cli import main

    return main(args)


def _execute(args: argparse.Namespace, options: Options, plan: Plan) -> int:
    from ownllm.batch.run import Stats, Unreachable

    err = sys.stderr
    if not options.api_key:
        print(f"ownllm batch run: no API key given (--key or ${KEY_ENV}); the deployed API will answer 401", file=err)
    if args.cost_per_request is None:
        print("ownllm batch run: no price given (--cost-per-request); showing tokens, not cost", file=err)
    if plan.already_ok or plan.already_failed:
        print(
            f"ownllm batch run: resuming: {plan.already_ok} in {plan.output.path}, {plan.already_failed} in "
            f"{plan.errors.path}; {len(plan.todo)} left",
            file=err,
        )
    output_writer, errors_writer = plan.output, plan.errors
    writers = (output_writer, errors_writer)
    try:
        for writer, state in ((output_writer, plan.output_state), (errors_writer, plan.errors_state)):
            if state.partial_bytes:
                writer.repair(state)
                print(
                    f"ownllm batch run: {writer.path}: removed a partial last line ({state.partial_bytes} bytes)",
                    file=err,
                )
    except OSError as exc:
        for writer in writers:
            writer.close()
        print(f"ownllm batch run: cannot repair {exc.filename or 'a result file'}: {exc.strerror}", file=err)
        return EXIT_USAGE
    stats = Stats()

    def sink(result: Result) -> None:
        (output_writer if result.ok else errors_writer).append(result.line())

    started = time.monotonic()
    interrupted = False
    failure: str | None = None
    try:
        if plan.todo:
            _send_all(args, options, plan, stats, sink)
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
    except OSError as exc:  # a full disk, a file removed under us
        failure = f"stopped: cannot write results: {exc.strerror or exc}; fix it and run the same command to resume"
    except Unreachable as exc:
        failure = f"stopped: {exc} Requests without a result are left for the next run."
    finally:
        for writer in writers:
            writer.close()
    elapsed = time.monotonic() - started
    _summary(args, plan, stats, elapsed)
    if failure:
        print(f"ownllm batch run: {failure}", file=err)
        return EXIT_FAILED_REQUESTS
    if interrupted:
        print(
            "ownllm batch run: stopped; the files are consistent. Run the same command to finish the rest "
            "(requests that were in flight have no result and will be sent again).",
            file=err,
        )
        return EXIT_INTERRUPTED
    return EXIT_FAILED_REQUESTS if plan.already_failed + stats.failed else 0


def _send_all(
    args: argparse.Namespace, options: Options, plan: Plan, stats: Stats, sink: Callable[[Result], None]
) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ownllm.batch.run import Sender

    total = len(plan.requests)
    base = total - len(plan.todo)
    started = time.monotonic()
    with Progress(
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rates]}"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[extra]}"),
        console=Console(stderr=True, highlight=False),
        disable=args.no_progress,
    ) as progress:
        task = progress.add_task("", total=total, completed=base, rates="", extra="")

        def tick() -> None:
            elapsed = max(time.monotonic() - started, 1e-9)
            handled = stats.ok + stats.failed
            rates = f"{handled / elapsed:.0f} req/s {stats.completion_tokens / elapsed:.0f} tok/s"
            extra = []
            if args.cost_per_request is not None:
                extra.append(f"${handled * args.cost_per_request:,.2f} so far")
            if stats.failed:
                extra.append(f"{stats.failed} failed")
            if stats.starting_since is not None:
                extra.append(f"endpoint starting, waited {time.monotonic() - stats.starting_since:.0f} s")
            progress.update(task, completed=base + handled, rates=rates, extra=", ".join(extra))

        async def main() -> None:
            current = asyncio.current_task()
            loop = asyncio.get_running_loop()
            if current is not None:
                loop.add_signal_handler(signal.SIGTERM, current.cancel)  # stop as on Ctrl-C
            await Sender(options, stats).run(iter(plan.todo), sink, tick)
            tick()

        asyncio.run(main())


def _summary(args: argparse.Namespace, plan: Plan, stats: Stats, elapsed: float) -> None:
    ok, failed = plan.already_ok + stats.ok, plan.already_failed + stats.failed
    total = len(plan.requests)
    handled = stats.ok + stats.failed
    lines = [f"{ok} of {total} succeeded -> {plan.output.path}; {failed} failed -> {plan.errors.path}"]
    if stats.failed_by:
        lines.append("failed this run: " + ", ".join(f"{k}: {v}" for k, v in sorted(stats.failed_by.items())))
    if handled:
        rate = handled / elapsed if elapsed > 0 else 0.0
        lines.append(
            f"this run: {handled} requests in {elapsed:.1f} s ({rate:.1f} req/s), {stats.retries} retries, "
            f"{stats.prompt_tokens} prompt + {stats.completion_tokens} output tokens"
        )
        if args.cost_per_request is not None:
            lines.append(
                f"cost this run: ${handled * args.cost_per_request:,.2f} at ${args.cost_per_request:g}/request"
            )
    for line in lines:
        print(line)
