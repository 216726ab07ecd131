"""Called by the CDK app right after `app.synth()`: estimate, print, write, guard the budget.

    assembly = app.synth()
    report_after_synth(assembly.directory, settings)

Writes cost-estimate.json and cost-estimate.md into the cloud assembly directory and prints
a short table to stderr. With settings.max_daily_usd set and exceeded, raises
BudgetExceeded (a SystemExit), so `cdk synth` fails with the estimate, the limit and the
three largest lines.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ownllm.cost.assembly import AssemblyError
from ownllm.cost.catalog import CatalogError
from ownllm.cost.cdk_command import cdk_command, shows_bill
from ownllm.cost.estimate import estimate_cdk_out
from ownllm.cost.model import Estimate
from ownllm.cost.template import TemplateValueError
from ownllm.cost.wording import basis_text, usd

if TYPE_CHECKING:
    from ownllm.settings import Settings

JSON_NAME = "cost-estimate.json"
MARKDOWN_NAME = "cost-estimate.md"


class BudgetExceeded(SystemExit):
    """The estimate is above settings.max_daily_usd, or has unpriced lines so that no one can
    tell; the message says by how much and why."""

    def __init__(self, estimate: Estimate, limit: float):
        self.estimate = estimate
        self.limit = limit
        if estimate.daily_usd <= limit:
            unpriced = ", ".join(f"{i.stack}/{i.logical_id} ({basis_text(i.basis)})" for i in estimate.unpriced)
            super().__init__(
                f"ownllm: the estimate is incomplete, so it cannot show the bill stays under max_daily_usd "
                f"{usd(limit)}/day: {len(estimate.unpriced)} unpriced: {unpriced}"
            )
            return
        top = "\n".join(
            f"  {usd(i.daily_usd)}/day  {i.stack}/{i.logical_id} ({i.resource_type}): {basis_text(i.basis)}"
            for i in estimate.top(3)
        )
        super().__init__(
            f"ownllm: estimated cost {usd(estimate.daily_usd)}/day exceeds max_daily_usd {usd(limit)}/day "
            f"(by {usd(estimate.daily_usd - limit)}). Largest lines:\n{top}\n"
            "Lower instance_count/max_instances, pick a smaller instance_type, set active_hours, "
            "or raise max_daily_usd."
        )


def write_reports(estimate: Estimate, outdir: str | os.PathLike) -> tuple[Path, Path]:
    from ownllm.cost.report import markdown

    out = Path(outdir)
    json_path, md_path = out / JSON_NAME, out / MARKDOWN_NAME
    estimate.write_json(json_path)
    md_path.write_text(markdown(estimate))
    return json_path, md_path


def report_after_synth(outdir: str | os.PathLike, settings: Settings, *, stream: IO[str] | None = None) -> Estimate:
    """Estimate the templates in `outdir`, print the table to stderr, write the reports.

    Raises BudgetExceeded when settings.max_daily_usd is set and the estimate is above it
    (after the reports are written, so CI can still show them).
    """
    try:
        estimate = estimate_cdk_out(outdir, settings)
    except (AssemblyError, TemplateValueError, CatalogError) as exc:
        # One line and exit status 2 instead of a traceback through `cdk synth`.
        (stream or sys.stderr).write(f"ownllm: cost estimate failed: {exc}\n")
        raise SystemExit(2) from None
    write_reports(estimate, outdir)
    from ownllm.cost.report import headline, print_terminal

    limit = settings.max_daily_usd
    over = limit is not None and (estimate.daily_usd > limit or not estimate.complete)
    if shows_bill(cdk_command()):
        print_terminal(estimate, file=stream or sys.stderr)
    else:  # cdk ls, diff, destroy: the bill is in cdk.out, one line is enough
        note = f"; over max_daily_usd {usd(float(limit))}/day, so cdk deploy is refused" if over and limit else ""
        (stream or sys.stderr).write(f"ownllm cost estimate: {headline(estimate)} ({MARKDOWN_NAME} in cdk.out){note}\n")
    if over and limit is not None:
        raise BudgetExceeded(estimate, float(limit))
    return estimate
