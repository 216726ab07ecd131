"""Render an estimate: a short rich table for the terminal, Markdown (with a Mermaid chart)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import IO

from ownllm.cost.model import FREE, Estimate, Item, monthly
from ownllm.cost.wording import basis_text, short_number, usd

TERMINAL_LINES = 12
# Under `cdk synth` stderr is a pipe with no width of its own: the table keeps to 80 columns.
TERMINAL_WIDTH = 80


def headline(est: Estimate) -> str:
    text = f"{usd(est.daily_usd)}/day, {usd(est.monthly_usd)}/month"
    if not est.complete:
        text = f"INCOMPLETE, {len(est.unpriced)} unpriced resource(s) not counted: at least {text}"
    if abs(est.max_daily_usd - est.min_daily_usd) > 0.005:
        text += f" (range {usd(est.min_daily_usd)}..{usd(est.max_daily_usd)}/day)"
    return text


def _where(est: Estimate) -> str:
    return f"region {est.region} ({est.region_source}); price catalog of {est.catalog_date}"


def _cost_lines(est: Estimate) -> tuple[list[Item], list[Item], list[Item]]:
    charged = sorted(
        (i for i in est.items if i.priced and i.category != FREE and (i.daily_usd or 0) > 0),
        key=lambda i: -(i.daily_usd or 0),
    )
    zero = [i for i in est.items if i.priced and i not in charged]
    return charged, est.unpriced, zero


# ----- terminal ------------------------------------------------------------------------------


def use_color(out: IO[str], environ: Mapping[str, str] | None = None) -> bool:
    """Colour only on a terminal, never with NO_COLOR (https://no-color.org); FORCE_COLOR=1 forces it.

    `cdk synth` runs the app with FORCE_COLOR=0 and stderr on a pipe: no colour codes then."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    force = env.get("FORCE_COLOR", "")
    if force:
        return force.lower() not in ("0", "false", "no")
    return hasattr(out, "isatty") and out.isatty()


def print_terminal(est: Estimate, file: IO[str] | None = None) -> None:
    """The estimate as a short table, on stderr unless told otherwise.

    The table keeps to 80 columns: stacks are section rows, so a resource cell holds only its
    logical id; the type and basis columns appear only on a terminal wide enough for them
    (cost-estimate.md always has them)."""
    from rich import box
    from rich.console import Console  # imported here: synth pays for rich only when it prints
    from rich.table import Table

    out = file or sys.stderr
    color = use_color(out)
    piped = not (hasattr(out, "isatty") and out.isatty()) and "COLUMNS" not in os.environ
    console = Console(
        file=out,
        highlight=False,
        force_terminal=color,
        color_system="auto" if color else None,
        width=TERMINAL_WIDTH if piped else None,
    )
    charged, unpriced, zero = _cost_lines(est)
    wide = console.width >= 150
    table = Table(caption=_where(est), caption_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("stack / resource", no_wrap=True, overflow="ellipsis")
    if wide:
        table.add_column("type", no_wrap=True)
    table.add_column("$/day", justify="right", no_wrap=True)
    table.add_column("$/month", justify="right", no_wrap=True)
    if wide:
        table.add_column("basis", overflow="fold", ratio=1)

    def row(name: str, rtype: str, daily: str, month: str, basis: str) -> None:
        table.add_row(*((name, rtype, daily, month, basis) if wide else (name, daily, month)))

    shown = charged[:TERMINAL_LINES]
    for stack in est.stacks or [{"name": i.stack} for i in est.items[:1]]:
        mine = [i for i in shown + unpriced if i.stack == stack["name"]]
        if not mine:
            continue
        if "daily_usd" in stack:
            row(f"[bold]{stack['name']}[/]", "", usd(stack["daily_usd"]), usd(stack["monthly_usd"]), "")
        for item in mine:
            if item.priced:
                row(
                    f"  {item.logical_id}",
                    _short_type(item.resource_type),
                    usd(item.daily_usd),
                    usd(monthly(item.daily_usd or 0)),
                    basis_text(item.basis),
                )
            else:
                row(
                    f"  {item.logical_id}",
                    _short_type(item.resource_type),
                    "[yellow]unpriced[/]",
                    "",
                    basis_text(item.basis),
                )
    if len(charged) > TERMINAL_LINES:
        rest = sum(i.daily_usd or 0 for i in charged[TERMINAL_LINES:])
        row(f"+ {len(charged) - TERMINAL_LINES} more lines", "", usd(rest), usd(monthly(rest)), "")
    if zero:
        row(f"+ {len(zero)} resources with no charge", "", "$0.00", "$0.00", "see cost-estimate.md")
    console.print(f"[bold]ownllm cost estimate[/]: {headline(est)}")
    console.print(table)
    top = est.top(1)
    if top and not wide:
        console.print(f"[bold]Largest line[/]: {top[0].logical_id}: {basis_text(top[0].basis)}")
    for item in unpriced:
        if not wide:
            console.print(f"[yellow]unpriced[/] {item.stack}/{item.logical_id}: {basis_text(item.basis)}")
    console.print("[bold]Assumptions[/]: " + "; ".join(est.assumption_lines))
    if est.breakeven:
        console.print("[bold]Break-even[/]: " + est.breakeven.get("summary", ""))
    for w in est.warnings:
        console.print(f"[yellow]warning[/]: {w}")


def _short_type(rtype: str) -> str:
    return rtype.removeprefix("AWS::")


# ----- Markdown ------------------------------------------------------------------------------


def markdown_cell(text: object) -> str:
    """Text that stays inside one Markdown table cell (the report's and the diff's)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def mermaid_chart(est: Estimate) -> str:
    chart = est.chart or {}
    points = chart.get("requests_per_day") or []
    if not points:
        return ""
    beyond = chart.get("beyond_capacity") or [False] * len(points)
    # Categories past what max_instances serves carry a "*" (xychart-beta has no per-point marks).
    labels = ", ".join(f'"{short_number(r)}{"*" if b else ""}"' for r, b in zip(points, beyond, strict=True))
    own = ", ".join(f"{v:.2f}" for v in chart["own_daily_usd"])
    api = ", ".join(f"{v:.2f}" for v in chart["api_daily_usd"])
    return "\n".join(
        [
            "```mermaid",
            "xychart-beta",
            '    title "Daily cost (USD) by requests/day"',
            f'    x-axis "requests/day" [{labels}]',
            '    y-axis "USD/day"',
            f"    line [{own}]",
            f"    line [{api}]",
            "```",
        ]
    )


def markdown(est: Estimate, heading: str = "#") -> str:
    charged, unpriced, zero = _cost_lines(est)
    h2 = heading + "#"
    title = (
        "ownllm cost estimate" if est.complete else f"ownllm cost estimate (INCOMPLETE: {len(est.unpriced)} unpriced)"
    )
    out = [f"{heading} {title}", "", f"**{headline(est)}** in {_where(est)}.", ""]
    if est.budget.get("max_daily_usd") is not None:
        state = "**exceeded**" if est.budget.get("exceeded") else "within"
        out += [f"Budget guard: max_daily_usd = {usd(est.budget['max_daily_usd'])}: {state}.", ""]
    if len(est.stacks) > 1:
        out += [f"{h2} Per stack", "", "| stack | region | $/day | $/month |", "| --- | --- | ---: | ---: |"]
        out += [
            f"| {markdown_cell(s['name'])} | {s['region']} | {usd(s['daily_usd'])} | {usd(s['monthly_usd'])} |"
            for s in est.stacks
        ]
        out.append("")
    out += [
        f"{h2} Per resource",
        "",
        "| stack | resource | type | $/day | $/month | basis |",
        "| --- | --- | --- | ---: | ---: | --- |",
    ]
    for i in charged:
        out.append(
            f"| {markdown_cell(i.stack)} | {markdown_cell(i.logical_id)} | {markdown_cell(i.resource_type)} | {usd(i.daily_usd)} | "
            f"{usd(monthly(i.daily_usd or 0))} | {markdown_cell(basis_text(i.basis))} |"
        )
    for i in unpriced:
        out.append(
            f"| {markdown_cell(i.stack)} | {markdown_cell(i.logical_id)} | {markdown_cell(i.resource_type)} | **unpriced** | | "
            f"{markdown_cell(basis_text(i.basis))} |"
        )
    out.append("")
    if zero:
        out += [
            f"<details><summary>{len(zero)} resources with no daily charge</summary>",
            "",
            "| stack | resource | type | basis |",
            "| --- | --- | --- | --- |",
        ]
        out += [
            f"| {markdown_cell(i.stack)} | {markdown_cell(i.logical_id)} | {markdown_cell(i.resource_type)} | {markdown_cell(basis_text(i.basis))} |"
            for i in zero
        ]
        out += ["", "</details>", ""]
    out += [f"{h2} Assumptions", ""] + [f"- {line}" for line in est.assumption_lines] + [""]
    if est.breakeven:
        b = est.breakeven
        out += [f"{h2} Owning vs a per-token API", "", b.get("summary", ""), ""]
        chart = mermaid_chart(est)
        if chart:
            api = b.get("api", {})
            servable = b.get("max_requests_per_day_at_max_capacity")
            limit = (
                f" Volumes marked * are beyond what max_instances serves (about {servable:,.0f} requests/day): "
                "the first line prices the instances they would need, which max_instances does not allow."
                if servable
                else ""
            )
            out += [
                chart,
                "",
                f"First line: this deployment (self-hosted); second line: {api.get('label', 'the API')} "
                f"at ${api.get('input_usd_per_m', 0):g} / ${api.get('output_usd_per_m', 0):g} per 1M "
                f"input / output tokens ({markdown_cell(api.get('source', ''))}).{limit}",
                "",
                "| requests/day | self-hosted $/day | API $/day | within max_instances |",
                "| ---: | ---: | ---: | --- |",
            ]
            c = est.chart
            flags = c.get("beyond_capacity") or [False] * len(c["requests_per_day"])
            out += [
                f"| {r:,.0f} | {usd(o)} | {usd(a)} | {'**no**' if b else 'yes'} |"
                for r, o, a, b in zip(c["requests_per_day"], c["own_daily_usd"], c["api_daily_usd"], flags, strict=True)
            ]
            out.append("")
    if est.capacity:
        out += [
            f"{h2} Capacity",
            "",
            "| endpoint | instance | scaling | needed | min..max | max requests/day | GPU memory | weights |",
            "| --- | --- | --- | ---: | --- | ---: | ---: | ---: |",
        ]
        for c in est.capacity:
            fits = {True: "fits", False: "**does not fit**", None: "unknown"}[c["model_fits"]]
            mem = f"{c['gpu_memory_gib']:g} GiB" if c["gpu_memory_gib"] is not None else "unknown"
            need = f"{c['weights_gib']:g} GiB at {c['precision']} ({fits})"
            needed = str(c["instances_needed"]) + ("" if c["serves_assumed_load"] else " (**over max**)")
            maxr = f"{c['max_requests_per_day']:,}" if c["max_requests_per_day"] is not None else "?"
            out.append(
                f"| {markdown_cell(c['stack'] + '/' + c['endpoint'])} | {c['instance_type']} | {c['scaling']} | "
                f"{needed} | {c['min_instances']}..{c['max_instances']} | {maxr} | {mem} | {need} |"
            )
        out.append("")
    if est.warnings:
        out += [f"{h2} Warnings", ""] + [f"- {markdown_cell(w)}" for w in est.warnings] + [""]
    sources = sorted({s for i in est.items for s in i.sources})
    if sources:
        out += (
            ["<details><summary>Price sources</summary>", ""]
            + [f"- {markdown_cell(s)}" for s in sources]
            + ["", "</details>", ""]
        )
    return "\n".join(out)
