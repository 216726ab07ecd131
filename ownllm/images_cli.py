"""`ownllm images refresh|show`: the committed engine image table (ownllm/data/images.json)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

# The command talks through rich: tables to stdout, one-line errors to stderr.
_OUT = Console(highlight=False, soft_wrap=True)
_ERR = Console(stderr=True, highlight=False, soft_wrap=True)


def register(subparsers: Any) -> None:
    images = subparsers.add_parser("images", help="the pinned engine images per region, and the host AMI each needs")
    images_sub = images.add_subparsers(dest="images_command", required=True, metavar="ACTION")

    refresh = images_sub.add_parser(
        "refresh", help="rebuild the table with the SageMaker SDK for the versions pinned in ownllm/engines.py"
    )
    refresh.add_argument("--output", help="table file to write (default: the bundled ownllm/data/images.json)")
    refresh.set_defaults(func=cmd_refresh)

    show = images_sub.add_parser("show", help="print the table")
    show.add_argument("--region", default="us-east-1", help="region whose image URIs to print (default: us-east-1)")
    show.set_defaults(func=cmd_show)


def _unwritable(path: Path) -> str | None:
    """Why `path` cannot take the table, found before the SDK is asked; None when it can."""
    if path.is_dir():
        return "is a folder; give a file name"
    if not path.parent.is_dir():
        return f"its folder {str(path.parent)!r} does not exist"
    return None


def cmd_refresh(args: argparse.Namespace) -> int:
    from ownllm import images

    path = Path(args.output) if args.output else images.TABLE_PATH
    problem = _unwritable(path)
    if problem:
        _ERR.print(f"images refresh: --output {str(path)!r}: {problem}; nothing written", markup=False)
        return 2
    try:
        table = images.build_table()
    except ModuleNotFoundError as exc:
        _ERR.print(f"images refresh: the SageMaker SDK is needed ({exc.name} is not installed)", markup=False)
        return 1
    except images.ImageTableError as exc:
        _ERR.print(f"images refresh: {exc}", markup=False)
        return 1
    try:
        images.write_table(table, path)
    except OSError as exc:
        _ERR.print(f"images refresh: --output {str(path)!r}: cannot be written ({exc.strerror or exc})", markup=False)
        return 2
    engines = table["engines"]
    regions = sum(len(e["images"]) for e in engines.values())
    _OUT.print(
        f"wrote {path}: {len(engines)} engines, {regions} images, from sagemaker-core {table['sagemaker_core']}",
        markup=False,
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ownllm import images, regions

    problem = regions.unsupported_region_problem(args.region)
    if problem:
        _ERR.print(f"images show: --{problem}", markup=False)
        return 2
    try:
        table = images.load_table()
    except images.ImageTableError as exc:
        _ERR.print(f"images show: {exc}", markup=False)
        return 1
    out = Table(title=f"Pinned engine images ({args.region})")
    for column in ("engine", "framework", "version", "CUDA", "InferenceAmiVersion", "regions", "image"):
        out.add_column(column, overflow="fold")
    for engine, entry in table.items():
        image = entry.images.get(args.region)
        out.add_row(
            engine,
            entry.framework,
            entry.version,
            entry.cuda_label,
            entry.inference_ami_version or "(SageMaker default)",
            str(len(entry.images)),
            image.uri if image else f"not published in {args.region}",
        )
    _OUT.print(out)
    return 0
