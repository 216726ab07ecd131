"""Feed measured speeds back into cdk.json, where the cost estimator reads them.

Two Settings fields come from a sweep:
- `generation_tokens_per_s`: what one client sees, the median over requests of output
  tokens / latency at the lowest healthy concurrency (the sweep's closest thing to an idle
  endpoint). It includes network, Lambda and prefill time, which is what a caller waits for.
- `instance_tokens_per_s`: the best aggregate output tokens/s over healthy levels, divided
  by the number of instances that served the sweep.

A level is healthy when at most 1% of its requests failed: throughput bought with errors
is not capacity.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ownllm.bench.report import BenchReport, LevelSummary
from ownllm.settings import (
    CDK_JSON_ENCODING,
    DuplicateKeyError,
    Settings,
    SettingsError,
    setting_location,
    settings_from_app_context,
    unique_json_object,
)

MAX_ERROR_RATE = 0.01
STAND_IN_MARK = "stand-in"


class CalibrationError(Exception):
    """Why a sweep cannot calibrate the estimate, in one line for the user."""


@dataclass(frozen=True)
class Calibration:
    generation_tokens_per_s: float
    instance_tokens_per_s: float
    generation_from_concurrency: int
    throughput_from_concurrency: int
    instances: int

    def settings(self) -> dict[str, float]:
        return {
            "generation_tokens_per_s": self.generation_tokens_per_s,
            "instance_tokens_per_s": self.instance_tokens_per_s,
        }


def _healthy(level: LevelSummary) -> bool:
    return level.ok > 0 and level.error_rate <= MAX_ERROR_RATE and level.output_tokens_per_s > 0


def calibration_from(report: BenchReport, instances: int = 1) -> Calibration:
    if instances < 1:
        raise CalibrationError(f"instances {instances} must be at least 1")
    if report.backend == STAND_IN_MARK or STAND_IN_MARK in report.model.lower():
        raise CalibrationError(
            f"the model {report.model!r} is ownllm's stand-in: its speed is whatever it was told to fake, "
            "not a model's. Calibrate against the deployed API, or `ownllm local --upstream` with a real model"
        )
    healthy = [lv for lv in report.levels if _healthy(lv)]
    if not healthy:
        summary = "; ".join(f"c={lv.concurrency}: {lv.ok}/{lv.requests} ok" for lv in report.levels) or "no levels"
        raise CalibrationError(
            f"no concurrency level had output tokens with at most {MAX_ERROR_RATE:.0%} failed requests ({summary}); "
            "nothing trustworthy to calibrate from"
        )
    # (concurrency, tokens/s one request saw) of the levels that measured it; the lowest level is the least contended
    speeds = [(lv.concurrency, lv.request_tokens_per_s) for lv in healthy if lv.request_tokens_per_s]
    if not speeds:
        raise CalibrationError("no successful request reported usage.completion_tokens; cannot measure tokens/s")
    lowest_concurrency, generation_tokens_per_s = min(speeds)
    best = max(healthy, key=lambda lv: lv.output_tokens_per_s)
    calibration = Calibration(
        generation_tokens_per_s=round(generation_tokens_per_s, 1),
        instance_tokens_per_s=round(best.output_tokens_per_s / instances, 1),
        generation_from_concurrency=lowest_concurrency,
        throughput_from_concurrency=best.concurrency,
        instances=instances,
    )
    try:  # the same validation synth applies, so cdk.json never receives a value synth rejects
        Settings.from_context(calibration.settings())
    except SettingsError as exc:
        raise CalibrationError(str(exc)) from None
    return calibration


def write_calibration(cdk_json: Path, calibration: Calibration) -> dict[str, tuple[Any, float]]:
    """Set the two fields in cdk.json's context.ownllm; returns {key: (old, new)}.

    Everything else in the file is kept, key order included, and the file is written back
    with its own indentation, so for a file in JSON's usual layout (what `cdk init` writes)
    the diff is just the two values.
    """
    doc, text = _read(cdk_json)
    context = doc.setdefault("context", {})
    ownllm = context.setdefault("ownllm", {})
    changes = {}
    for key, value in calibration.settings().items():
        # Write where the settings loader reads the key: a flat context key wins over context.ownllm.
        home = context if setting_location(context, key) == (key,) else ownllm
        changes[key] = (home.get(key), value)
        home[key] = value
    try:
        cdk_json.write_text(json.dumps(doc, indent=_indent(text), ensure_ascii=False) + "\n")
    except OSError as exc:
        raise CalibrationError(f"{cdk_json} cannot be written ({exc.strerror or exc})") from None
    return changes


def check_cdk_json(cdk_json: Path) -> None:
    """Before a sweep: refuse a cdk.json the measured speeds could not be written into (CalibrationError),
    so a long sweep does not end in "not calibrated"."""
    _read(cdk_json)


def _read(cdk_json: Path) -> tuple[dict[str, Any], str]:
    """cdk.json's object and its text; CalibrationError when the two fields cannot be written into it."""
    if not cdk_json.is_file():
        raise CalibrationError(f"{cdk_json} does not exist; run from the project folder or pass --cdk-json")
    try:
        text = cdk_json.read_bytes().decode(CDK_JSON_ENCODING)
    except OSError as exc:
        raise CalibrationError(f"{cdk_json} cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise CalibrationError(f"{cdk_json} is not UTF-8 text (byte {exc.start})") from None
    try:
        doc = json.loads(text, object_pairs_hook=unique_json_object)
    except DuplicateKeyError as exc:
        raise CalibrationError(
            f"{cdk_json}: key {str(exc)!r} appears twice in one object; a rewrite would keep only one, so say it once"
        ) from None
    except ValueError as exc:
        raise CalibrationError(f"{cdk_json} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise CalibrationError(f"{cdk_json} does not hold a JSON object")
    context = doc.get("context", {})
    if not isinstance(context, dict):
        raise CalibrationError(f"{cdk_json}: context is not an object")
    if not isinstance(context.get("ownllm", {}), dict):
        raise CalibrationError(f"{cdk_json}: context.ownllm is not an object")
    try:  # the measured speeds go into a cdk.json synth takes, or into none
        settings_from_app_context(context)
    except SettingsError as exc:
        raise CalibrationError(f"{cdk_json}: synth would refuse it: {'; '.join(exc.problems)}") from None
    return doc, text


def _indent(text: str) -> int | str:
    """The indentation of the first indented line (tabs kept as a tab), 2 if none."""
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" \t")
        if stripped and len(stripped) < len(line):
            lead = line[: len(line) - len(stripped)]
            return "\t" if lead.startswith("\t") else len(lead)
    return 2
