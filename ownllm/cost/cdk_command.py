"""Which `cdk` command runs this app: `synth` and `deploy` show the bill, `ls`, `diff` and
`destroy` only need a line.

The CDK CLI tells the app nothing about the command it runs (its environment carries the
output folder, context and region only), so this reads the command line of the CLI process
among the app's ancestors (psutil): `node .../cdk synth --quiet`.
None when no `cdk` process is found (the app run by hand, or by a test).
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil

# How many ancestors to look through: cdk -> (shell) -> python app.py; npx adds two more.
MAX_DEPTH = 6
# Commands that show the bill; any other CDK command gets one line at most.
BILL_COMMANDS = frozenset({"synth", "synthesize", "deploy", "watch"})
# The CLI's commands that run the app (`cdk --help`); option values never match one.
CDK_COMMANDS = BILL_COMMANDS | frozenset({"ls", "list", "diff", "destroy", "import", "metadata", "drift", "rollback"})


def _process(pid: int) -> tuple[int, list[str]] | None:
    """(parent pid, argv) of a process, or None when it cannot be read."""
    try:
        process = psutil.Process(pid)
        return process.ppid(), process.cmdline()
    except psutil.Error:
        return None


def command_after_cdk(argv: list[str]) -> str | None:
    """'synth' from ['node', '/x/node_modules/.bin/cdk', 'synth', '--quiet']; None if not cdk."""
    for i, arg in enumerate(argv):
        if Path(arg).name == "cdk":
            return next((a for a in argv[i + 1 :] if a in CDK_COMMANDS), None)
    return None


def cdk_command(pid: int | None = None) -> str | None:
    """The CDK CLI command among this process's ancestors, e.g. 'synth', 'ls', 'diff'."""
    pid = os.getppid() if pid is None else pid
    for _ in range(MAX_DEPTH):
        if pid <= 1:
            return None
        found = _process(pid)
        if found is None:
            return None
        parent, argv = found
        command = command_after_cdk(argv)
        if command is not None:
            return command
        pid = parent
    return None


def shows_bill(command: str | None) -> bool:
    return command is None or command in BILL_COMMANDS


def guards_budget(command: str | None) -> bool:
    """Commands an over-budget estimate fails: those that make or deploy templates, never
    `ls`, `diff` or `destroy` (a guard there could keep a costly endpoint from being removed)."""
    return command in {"synth", "synthesize", "deploy"}
