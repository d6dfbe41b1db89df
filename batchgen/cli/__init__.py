"""The command line: argparse, --help texts, exit codes, one clear message per error, and printing.

Each command lives in its own module (`run`, `plan`, `runs`, `cancel`, `unverified`, `ls`, `deliver`,
`report`): it parses its flags, calls one function of the library (`batchgen.commands`) and prints the
record it returns. Heavy modules are imported when a command runs, so `batchgen --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from batchgen import __version__
from batchgen.cli.cancel import add_cancel
from batchgen.cli.common import (
    EPILOG,
    EXIT_BAD_INPUT,
    EXIT_BROKEN_PIPE,
    EXIT_HARD_STOP,
    EXIT_INCOMPLETE,
    example,
    said,
    say,
    unwrap,
)
from batchgen.cli.deliver import add_deliver
from batchgen.cli.ls import add_ls
from batchgen.cli.plan import add_plan, add_schema
from batchgen.cli.report import add_report
from batchgen.cli.run import add_run
from batchgen.cli.runs import add_status
from batchgen.cli.unverified import add_unverified
from batchgen.errors import BatchgenError, UserError

if TYPE_CHECKING:
    from batchgen.cli.common import Commands

__all__ = ["build_parser", "main"]


def build_parser(*, emulator: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchgen",
        description="Run large batches of Oxen.ai video and image generations from a YAML manifest: "
        "nothing lost, nothing paid for twice, and a rerun finishes only what is missing.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"batchgen {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_run(commands)
    add_plan(commands)
    add_status(commands)
    add_cancel(commands)
    add_unverified(commands)
    add_ls(commands)
    add_deliver(commands)
    add_report(commands)
    add_schema(commands)
    _add_emulator(commands, full=emulator)
    return parser


def _add_emulator(commands: Commands, *, full: bool) -> None:
    """The emulator's 40-odd flags are added (and the emulator imported) only when it is the command."""
    emulator = commands.add_parser(
        "emulator",
        help="run the local emulator of the Oxen API in the foreground",
        description="A local emulator of Oxen's hosted inference API, for demos and tests.",
        epilog=example(
            "batchgen emulator --port 8765 --time-scale 0.01",
            "then: OXEN_API_KEY=emulator-key batchgen run jobs/demo.yaml --api-base http://127.0.0.1:8765 --inline-assets",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if full:
        from batchgen.emulator import cli as emulator_cli

        emulator_cli.add_arguments(emulator)
        emulator.set_defaults(handler=emulator_cli.run)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(emulator="emulator" in words)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        code: int = args.handler(args)
        sys.stdout.flush()  # here, so a reader that went away (`| head`) is handled below
        return code
    except BaseException as raw:
        exc = unwrap(raw)
        if isinstance(exc, BrokenPipeError):
            return _stdout_closed()
        if isinstance(exc, BatchgenError):
            say(f"error: {said(exc)}")
            return EXIT_BAD_INPUT if isinstance(exc, UserError) else EXIT_INCOMPLETE
        if isinstance(exc, KeyboardInterrupt):
            return EXIT_HARD_STOP
        raise


def _stdout_closed() -> int:
    """The reader of stdout went away (`batchgen status --json | head`): stop quietly. The rest of what
    the command would have printed goes to /dev/null, so the interpreter's own flush at exit cannot
    fail again; the exit code is a shell's for a command a closed pipe stopped (128 + SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # a stdout without a descriptor (a test's capture): nothing to do
        pass
    return EXIT_BROKEN_PIPE
