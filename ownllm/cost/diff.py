"""Compare two estimates (base and head of a pull request) and write the Markdown for it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ownllm.cost.basis import Basis
from ownllm.cost.model import Estimate, Item, monthly
from ownllm.cost.report import markdown_cell
from ownllm.cost.wording import basis_text, usd

COMMENT_MARKER = "<!-- ownllm-cost-preview -->"
GITHUB_COMMENT_LIMIT = 65_536
EPSILON_USD = 0.00005  # below this a per-day change is rounding, not a change


@dataclass(frozen=True)
class Change:
    kind: str  # "added", "removed", "changed"
    stack: str
    logical_id: str
    resource_type: str
    before: float | None
    after: float | None
    basis: Basis
    priced_before: bool = True
    priced_after: bool = True
    moved: tuple[str, ...] = ()  # the components whose cost changed, e.g. ("Duration",)

    @property
    def delta(self) -> float:
        return (self.after or 0.0) - (self.before or 0.0)


@dataclass
class CostDiff:
    base: Estimate | None
    head: Estimate
    changes: list[Change]

    @property
    def before(self) -> float:
        return self.base.daily_usd if self.base else 0.0

    @property
    def after(self) -> float:
        return self.head.daily_usd

    @property
    def delta(self) -> float:
        return self.after - self.before

    @property
    def complete(self) -> bool:
        """Both totals count every resource; otherwise a change in them may be a price gone missing."""
        return self.head.complete and (self.base is None or self.base.complete)

    @property
    def percent(self) -> float | None:
        return None if not self.before or not self.complete else self.delta / self.before * 100


def diff_estimates(base: Estimate | None, head: Estimate) -> CostDiff:
    before = {i.key: i for i in base.items} if base else {}
    after = {i.key: i for i in head.items}
    changes: list[Change] = []
    for key, item in after.items():
        old = before.get(key)
        if old is None:
            if item.priced and not item.daily_usd:
                continue  # a new free resource is not news
            changes.append(_change("added", None, item))
        elif old.priced != item.priced or (
            item.priced and abs((old.daily_usd or 0) - (item.daily_usd or 0)) >= EPSILON_USD
        ):
            changes.append(_change("changed", old, item))
    for key, old in before.items():
        if key not in after and not (old.priced and not old.daily_usd):
            changes.append(_change("removed", old, None))
    changes.sort(key=lambda c: (-abs(c.delta), c.stack, c.logical_id))
    return CostDiff(base, head, changes)


def _change(kind: str, old: Item | None, new: Item | None) -> Change:
    ref = new or old
    assert ref is not None
    return Change(
        kind,
        ref.stack,
        ref.logical_id,
        ref.resource_type,
        None if old is None else old.daily_usd,
        None if new is None else new.daily_usd,
        ref.basis,
        priced_before=old is None or old.priced,
        priced_after=new is None or new.priced,
        moved=moved_components(old, new) if old is not None and new is not None else (),
    )


def moved_components(old: Item, new: Item) -> tuple[str, ...]:
    """Names of the components whose daily cost changed between two versions of a line."""
    before = {c.name: c.daily_usd for c in old.components}
    after = {c.name: c.daily_usd for c in new.components}
    return tuple(
        name
        for name in [*before, *(n for n in after if n not in before)]
        if abs(after.get(name, 0.0) - before.get(name, 0.0)) >= EPSILON_USD
    )


def _signed(value: float) -> str:
    sign = "+" if value >= 0 else "-"
    return sign + usd(abs(value))


def total_line(d: CostDiff) -> str:
    if not d.complete:
        sides = [
            f"{name} has {len(e.unpriced)} unpriced"
            for name, e in (("base", d.base), ("head", d.head))
            if e is not None and not e.complete
        ]
        return (
            f"**Incomplete: {'; '.join(sides)}, so the totals ({usd(d.before)}/day → {usd(d.after)}/day) "
            "leave them out and no change is given.**"
        )
    pct = "new" if d.percent is None else f"{d.percent:+.1f}%"
    if d.base is None:
        return f"**{usd(d.after)}/day** ({usd(monthly(d.after))}/month); no base estimate to compare with."
    return (
        f"**{usd(d.before)}/day → {usd(d.after)}/day ({_signed(d.delta)}/day, {pct})**; "
        f"monthly {usd(monthly(d.before))} → {usd(monthly(d.after))} ({_signed(monthly(d.delta))})"
    )


def markdown_diff(d: CostDiff, *, comment: bool = False, base_note: str = "") -> str:
    """The diff as Markdown; with comment=True, a pull-request comment led by the hidden marker."""
    from ownllm.cost.report import markdown

    head = d.head
    out: list[str] = []
    if comment:
        out += [COMMENT_MARKER, "## ownllm cost preview", ""]
    else:
        out += ["# ownllm cost diff", ""]
    out += [total_line(d), ""]
    if base_note:
        out += [f"_{base_note}_", ""]
    out += [
        f"Region {head.region} ({head.region_source}); price catalog of {head.catalog_date}. "
        + (
            f"Range {usd(head.min_daily_usd)}..{usd(head.max_daily_usd)}/day."
            if abs(head.max_daily_usd - head.min_daily_usd) > 0.005
            else ""
        ),
        "",
    ]
    if head.budget.get("exceeded"):
        out += [
            f"> [!WARNING]\n> The estimate is above max_daily_usd ({usd(head.budget['max_daily_usd'])}/day): "
            "`cdk synth` fails on this branch.",
            "",
        ]
    if d.changes:
        out += [
            "| change | stack | resource | type | before $/day | after $/day | Δ $/day | basis |",
            "| --- | --- | --- | --- | ---: | ---: | ---: | --- |",
        ]
        for c in d.changes:
            before = usd(c.before) if c.kind != "added" else ""
            after = usd(c.after) if c.kind != "removed" else ""
            delta = _signed(c.delta) if c.priced_before and c.priced_after else "?"
            kind = f"{c.kind} ({', '.join(c.moved)})" if c.moved else c.kind
            out.append(
                f"| {kind} | {markdown_cell(c.stack)} | {markdown_cell(c.logical_id)} | {markdown_cell(c.resource_type)} | "
                f"{before} | {after} | {delta} | {markdown_cell(basis_text(c.basis))} |"
            )
        out.append("")
    else:
        out += ["No resource changes its cost.", ""]
    if head.unpriced:
        out += [
            f"Unpriced on this branch ({len(head.unpriced)}): "
            + ", ".join(f"`{i.stack}/{i.logical_id}` ({i.resource_type})" for i in head.unpriced),
            "",
        ]
    if head.breakeven.get("summary"):
        out += [head.breakeven["summary"], ""]
    out += ["Assumptions: " + "; ".join(head.assumption_lines), ""]
    full = markdown(head, heading="###")
    details = ["<details><summary>Full estimate for this branch</summary>", "", full, "", "</details>", ""]
    text = "\n".join(out + details)
    if len(text) > GITHUB_COMMENT_LIMIT - 200:
        text = "\n".join(out + ["_The full estimate is too long for a comment; see the workflow's artifact._", ""])
    return text


class EstimateFileError(ValueError):
    """A file given as an estimate is not one; the message names the file, in one line."""


def read_estimate_file(path: Path) -> Estimate:
    import json

    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise EstimateFileError(f"{path}: cannot be read ({exc})") from None
    except ValueError as exc:
        raise EstimateFileError(f"{path}: not an ownllm cost estimate (not valid JSON: {exc})") from None
    try:
        return Estimate.from_dict(doc)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EstimateFileError(f"{path}: not an ownllm cost estimate ({exc})") from None


def load_estimate(
    path: str | os.PathLike | None, estimate_dir: Callable[[Path], Estimate], reprice: bool = False
) -> tuple[Estimate | None, str]:
    """An estimate from a JSON file, a cdk.out with cost-estimate.json, or a bare cdk.out.

    Returns (None, why) when the path does not exist or holds no cloud assembly, so a pull
    request that adds the first stack still gets a preview. `reprice` (settings were given):
    a cdk.out is estimated from its templates even when it holds a written estimate, and a
    written estimate alone is refused, since the settings would be silently ignored.
    """
    if path is None:
        return None, "no base given"
    p = Path(path)
    if p.is_file():
        if reprice:
            raise EstimateFileError(_NOT_REPRICEABLE.format(p))
        return read_estimate_file(p), ""
    if p.is_dir():
        written = p / "cost-estimate.json"
        has_templates = (p / "manifest.json").is_file()
        if has_templates and (reprice or not written.is_file()):
            note = "" if written.is_file() else f"{p} had no cost-estimate.json; estimated from its templates"
            return estimate_dir(p), note
        if written.is_file():
            if reprice:
                raise EstimateFileError(_NOT_REPRICEABLE.format(written))
            return read_estimate_file(written), ""
    return None, f"{p} holds no estimate or cloud assembly (base synth failed or had no stacks)"


_NOT_REPRICEABLE = (
    "{}: a written estimate cannot be priced again with --settings or -c; give the cdk.out folder it was "
    "written into (its templates are priced again), or leave the settings out"
)
