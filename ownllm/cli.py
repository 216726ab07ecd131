"""The `ownllm` command. Each tool registers its own sub-commands; imports stay lazy so
`ownllm --help` and each sub-command start fast."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# module path -> its `register(subparsers)` adds the sub-commands it owns.
_COMMAND_MODULES = (
    "ownllm.cost.cli",
    "ownllm.local.cli",
    "ownllm.bench.cli",
    "ownllm.perf.cli",
    "ownllm.lint.cli",
    "ownllm.wake_cli",
    "ownllm.batch.cli",
    "ownllm.images_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ownllm",
        description="Run your own open LLM on AWS: what it costs, which instance serves it, the API locally, "
        "load tests and bulk jobs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not (exc.name and name.startswith(exc.name)):
                raise  # a missing dependency inside the tool is a real error
            continue  # that tool is not part of this installation
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader left (`ownllm ... | head`): not an error. Point stdout at /dev/null so the
        # interpreter's own flush at exit does not raise again (Python docs, signal module notes).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
