"""The command line: argparse, --help texts, exit codes, one clear message per error.

Each command lives in its own module (`run`, `plan`, `runs`, `report`); they import what they need when they run,
so `batchgen --help` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from batchgen import __version__
from batchgen.cli.common import EPILOG, EXIT_BAD_INPUT, EXIT_HARD_STOP, EXIT_INCOMPLETE
from batchgen.cli.plan import add_plan, add_schema
from batchgen.cli.report import add_report
from batchgen.cli.run import add_run
from batchgen.cli.runs import add_cancel, add_status
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
    )
    if full:
        from batchgen.emulator import cli as emulator_cli

        emulator_cli.add_arguments(emulator)
        emulator.set_defaults(handler=emulator_cli.run)


def _unwrap(exc: BaseException) -> BaseException:
    """The error to show for a task group's failure: its first non-cancellation error."""
    while isinstance(exc, BaseExceptionGroup):
        errors = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        exc = (errors or list(exc.exceptions))[0]
    return exc


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(emulator="emulator" in words)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        code: int = args.handler(args)
        return code
    except BaseException as raw:
        exc = _unwrap(raw)
        if isinstance(exc, UserError):
            print(f"batchgen: error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if isinstance(exc, BatchgenError):
            print(f"batchgen: error: {exc}", file=sys.stderr)
            return EXIT_INCOMPLETE
        if isinstance(exc, KeyboardInterrupt):
            return EXIT_HARD_STOP
        raise
