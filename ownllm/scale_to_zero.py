"""What an endpoint that scales to zero is billed for: expected instance-hours, cold starts and
the wait each one costs a caller, from the traffic pattern. Pure arithmetic, no AWS.

Model: requests arrive at random (a Poisson process) at an even rate inside the active hours
and not at all outside them. After the last request of a busy spell the component idles for
`scale_in_idle_min` before target tracking removes its copy, and managed instance scaling
releases the instance `release_min` later: the instance is billed through both. The next
request then finds no capacity, SageMaker refuses it (the forwarder answers 503 "starting")
and the alarm on NoCapacityInvocationFailures adds a copy: a cold start, of which the
instance is billed for `billed_wake_min` (launch to ready) while callers wait `wake_min`.

With an even arrival rate r per hour and D hours of idle-then-release:
- each of the n - 1 gaps between a day's n = r*H requests is billed for min(gap, D), on
  average (1 - e^(-r*D)) / r hours, and the last request is followed by all of D: billed
  (n - 1) * (1 - e^(-r*D)) / r + D hours, never more than the window itself + D;
- each gap longer than the idle time ends in a scale-in and the next request wakes it:
  cold starts per day = 1 + (n - 1) * e^(-r * idle), at most one per idle-plus-wake period;
- busier spells need more instances: when the load needs k >= 1 instances, the window is
  billed k times over (the same count an always-on endpoint would need).

Figures: AWS's scale-to-zero announcement (AWS ML blog, "Unlock cost savings with the new scale
down to zero feature in SageMaker Inference", 2024-12-03) and the SageMaker developer guide
(endpoint-auto-scaling-zero-instances): about 5-10 minutes to wake a 7-8B model (alarm about
1 min, instance about 2 min, model load several minutes), scale-in after about 15 minutes idle,
instance released about 10 minutes later. Nobody has measured them on this kit yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SOURCE = (
    "AWS ML blog 'Unlock cost savings with the new scale down to zero feature in SageMaker Inference' "
    "(2024-12-03); SageMaker developer guide, endpoint-auto-scaling-zero-instances"
)


@dataclass(frozen=True)
class WakeAssumptions:
    scale_in_idle_min: float = 15.0  # idle time before target tracking removes the last copy
    release_min: float = 10.0  # then the instance is released by managed instance scaling
    wake_min: float = 7.5  # a caller's wait: no-capacity alarm, instance start, model load (5-10 min)
    billed_wake_min: float = 6.5  # the part of the wake the instance is running (after the ~1 min alarm)

    def __post_init__(self) -> None:
        for name in ("scale_in_idle_min", "release_min", "wake_min", "billed_wake_min"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= 24 * 60):
                raise ValueError(f"{name}: {value!r} must be a finite number of minutes from 0 to 1440")
        if self.billed_wake_min > self.wake_min:
            raise ValueError(f"billed_wake_min {self.billed_wake_min} cannot exceed wake_min {self.wake_min}")


@dataclass(frozen=True)
class ScaleToZeroUsage:
    instance_hours_per_day: float  # expected
    min_instance_hours_per_day: float  # no request at all
    max_instance_hours_per_day: float  # max_instances all day
    cold_starts_per_day: float
    wait_s_per_cold_start: float
    assumptions: WakeAssumptions


def expected_usage(
    *,
    requests_per_day: float,
    active_hours_per_day: float,
    instances_when_busy: int,
    max_instances: int,
    assumptions: WakeAssumptions | None = None,
) -> ScaleToZeroUsage:
    """Instance-hours and cold starts per day for traffic spread evenly over the active hours.

    instances_when_busy: instances the load needs while it runs (from the capacity model, >= 1).
    """
    a = assumptions or WakeAssumptions()
    if not (math.isfinite(requests_per_day) and requests_per_day >= 0):
        raise ValueError(f"requests_per_day: {requests_per_day!r} must be a finite number >= 0")
    if not (math.isfinite(active_hours_per_day) and 0 < active_hours_per_day <= 24):
        raise ValueError(f"active_hours_per_day: {active_hours_per_day!r} must be above 0 and at most 24")
    if instances_when_busy < 1 or max_instances < 1:
        raise ValueError("instances_when_busy and max_instances must be at least 1")
    ceiling = max_instances * 24.0
    if requests_per_day == 0:
        return ScaleToZeroUsage(0.0, 0.0, ceiling, 0.0, a.wake_min * 60, a)
    rate = requests_per_day / active_hours_per_day  # requests per hour inside the window
    idle_h, tail_h = a.scale_in_idle_min / 60, (a.scale_in_idle_min + a.release_min) / 60
    gaps = max(requests_per_day - 1, 0.0)
    # Billed while serving or idling towards scale-in: each gap costs min(gap, tail), the last all of it.
    serving_h = min(gaps * -math.expm1(-rate * tail_h) / rate + tail_h, active_hours_per_day + tail_h, 24.0)
    # The first request of the day always wakes it; later ones when the gap before them was long.
    wake_h = (a.wake_min + a.scale_in_idle_min) / 60
    cold = min(1 + gaps * math.exp(-rate * idle_h), 1 + active_hours_per_day / wake_h)
    hours = serving_h * instances_when_busy + cold * a.billed_wake_min / 60
    return ScaleToZeroUsage(
        instance_hours_per_day=min(hours, 24.0 * instances_when_busy, ceiling),
        min_instance_hours_per_day=0.0,
        max_instance_hours_per_day=ceiling,
        cold_starts_per_day=cold,
        wait_s_per_cold_start=a.wake_min * 60,
        assumptions=a,
    )
