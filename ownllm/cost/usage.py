"""Usage assumptions: the traffic an estimate is priced for, derived once from Settings.

Per-request lines (Lambda, API Gateway, logs, data transfer) cannot be priced from a
template alone; these figures make them explicit, and every report prints them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from ownllm.capacity import CALIBRATED, LAMBDA_OVERHEAD_S, Figure
from ownllm.cost import wording

if TYPE_CHECKING:
    from ownllm.settings import ActiveHours, Settings

# Log ingestion per request. Lambda: START/END/REPORT platform lines (~350 B) plus one
# structured application log line (~650 B). API Gateway access log: one JSON line with
# request id, ip, method, path, status, latency and sizes (~450 B).
# The model container (vLLM/LMI/TGI) logs about one line per request (~300 B).
LAMBDA_LOG_BYTES_PER_REQUEST = 1_000
ACCESS_LOG_BYTES_PER_REQUEST = 450
ENDPOINT_LOG_BYTES_PER_REQUEST = 300
# Bytes on the wire: ~4 bytes of UTF-8 per token plus ~600 B of JSON envelope and headers.
BYTES_PER_TOKEN = 4
ENVELOPE_BYTES = 600
GB = 1e9  # AWS bills transfer and log ingestion in decimal GB


@dataclass(frozen=True)
class ServingFigures:
    """The serving figures the stacks deploy with, and how each was reached."""

    target_concurrency: Figure
    latency_alarm_ms: int
    latency: Figure
    max_output_tokens: int
    max_tokens: Figure


@dataclass(frozen=True)
class Usage:
    requests_per_day: float
    avg_input_tokens: int
    avg_output_tokens: int
    generation_tokens_per_s: float
    instance_tokens_per_s: float
    instance_tokens_per_s_source: str
    generation_tokens_per_s_source: str = "settings.generation_tokens_per_s"
    active_hours_per_week: float = 168.0
    schedule: ActiveHours | None = None  # when requests arrive; None: all week
    lambda_overhead_s: float = LAMBDA_OVERHEAD_S
    lambda_log_bytes_per_request: int = LAMBDA_LOG_BYTES_PER_REQUEST
    access_log_bytes_per_request: int = ACCESS_LOG_BYTES_PER_REQUEST
    endpoint_log_bytes_per_request: int = ENDPOINT_LOG_BYTES_PER_REQUEST
    # How the serving figures the stacks use were reached (autoscaling target, alarm, max_tokens).
    serving: ServingFigures | None = None
    # (weekday index 0=MON, hour) pairs in which requests arrive; None means every hour.
    active_slots: frozenset[tuple[int, int]] | None = None

    @property
    def lambda_duration_s(self) -> float:
        """Per request: generating avg_output_tokens at the per-request speed, plus overhead."""
        return self.avg_output_tokens / self.generation_tokens_per_s + self.lambda_overhead_s

    @property
    def request_bytes(self) -> int:
        return self.avg_input_tokens * BYTES_PER_TOKEN + ENVELOPE_BYTES

    @property
    def response_bytes(self) -> int:
        return self.avg_output_tokens * BYTES_PER_TOKEN + ENVELOPE_BYTES

    @property
    def output_tokens_per_day(self) -> float:
        return self.requests_per_day * self.avg_output_tokens

    def tokens_per_s_while_active(self) -> float:
        """Output tokens per second the endpoint must produce while traffic arrives."""
        active_seconds_per_day = self.active_hours_per_week / 7 * 3600
        return self.output_tokens_per_day / active_seconds_per_day if active_seconds_per_day else 0.0

    def instances_needed(self) -> int:
        """Whole instances that keep up with the assumed load while traffic arrives."""
        return math.ceil(self.tokens_per_s_while_active() / self.instance_tokens_per_s - 1e-9)

    def is_active(self, weekday: int, hour: int) -> bool:
        return self.active_slots is None or (weekday, hour) in self.active_slots

    def with_requests(self, requests_per_day: float) -> Usage:
        return replace(self, requests_per_day=requests_per_day)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "schedule":
                d["active_window"] = wording.active_window(self)
            elif f.name == "serving":
                d["serving_lines"] = wording.serving_lines(self.serving)
            elif f.name != "active_slots":
                d[f.name] = getattr(self, f.name)
        d["lambda_duration_s"] = round(self.lambda_duration_s, 6)
        d["request_bytes"] = self.request_bytes
        d["response_bytes"] = self.response_bytes
        d["instances_needed"] = self.instances_needed()
        return d


def usage_from_settings(settings: Settings) -> Usage:
    """The traffic to price for, from validated settings."""
    cap = settings.capacity
    gen, tps = cap.request_tokens_per_s, cap.instance_tokens_per_s
    hours_per_week, slots = 168.0, None
    schedule = settings.schedule
    if schedule is not None:
        from ownllm.settings import DAYS

        days = [DAYS.index(d) for d in schedule.days]
        slots = frozenset((d, h) for d in days for h in range(schedule.start_hour, schedule.end_hour))
        hours_per_week = float(len(slots))
    return Usage(
        requests_per_day=float(settings.requests_per_day),
        avg_input_tokens=int(settings.avg_input_tokens),
        avg_output_tokens=int(settings.avg_output_tokens),
        generation_tokens_per_s=gen.value,
        instance_tokens_per_s=tps.value,
        instance_tokens_per_s_source=_source(tps, "settings.instance_tokens_per_s"),
        generation_tokens_per_s_source=_source(gen, "settings.generation_tokens_per_s"),
        active_hours_per_week=hours_per_week,
        schedule=schedule,
        active_slots=slots,
        serving=ServingFigures(
            cap.target_concurrency,
            settings.latency_alarm_ms,
            cap.latency_alarm_ms,
            settings.max_output_tokens,
            cap.max_output_tokens,
        ),
    )


def _source(figure: Figure, setting: str) -> str:
    """Where a speed came from: the calibrated setting's name, or the model and what it predicted."""
    return setting if figure.source == CALIBRATED else f"{figure.source}: {figure.basis}"
