"""What every command shares: exit codes, the API flags, errors said with flags, JSON on stdout."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import TYPE_CHECKING, Any

from batchgen.config import DEFAULT_API_BASE

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_BAD_INPUT = 2
EXIT_HARD_STOP = 130
EXIT_BROKEN_PIPE = 141  # stdout's reader went away (`| head`): as a shell reports a command SIGPIPE stopped


EPILOG = """\
exit codes:
  0    every job is done
  1    some jobs failed or were left (run the same command again to resume),
       or some results were not delivered (`batchgen deliver RUN_DIR` sends them)
  2    bad input or usage: nothing was submitted
  130  a second Ctrl-C or SIGTERM (0.5 s or more after the first) stopped it at once
       (still resumable)
  141  stdout was closed early (`| head`); nothing else changes
"""


def add_api_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-base",
        default=None,
        metavar="URL",
        help=f"API origin (default {DEFAULT_API_BASE}, or $OXEN_API_BASE)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="API key (default $OXEN_API_KEY; prefer the variable: flags show in `ps`)",
    )


def say(text: str) -> None:
    """A line for a person on stderr (above a progress bar, apart from --json's stdout)."""
    print(f"batchgen: {text}", file=sys.stderr, flush=True)


def warn_if_key_flag(args: argparse.Namespace) -> None:
    if getattr(args, "api_key", None):
        say(
            "warning: a key given with --api-key shows in `ps` and in shell history; "
            "prefer the OXEN_API_KEY variable"
        )


def example(*pairs: str) -> str:
    """An "example:" block for --help: command, what it does, command, what it does, …"""
    lines = ["example:"] if len(pairs) <= 2 else ["examples:"]
    for command, note in zip(pairs[::2], pairs[1::2], strict=True):
        lines += [f"  {command}", f"      {note}"]
    return "\n".join(lines) + "\n"


def add_only_flag(parser: argparse.ArgumentParser) -> argparse.Action:
    return parser.add_argument(
        "--only",
        action="append",
        metavar="KEY=VALUE",
        help="only the jobs whose variable, built-in (name, replica, index, model, key) or request field "
        "KEY is VALUE; repeat it: the same KEY twice is either value, different KEYs must all match",
    )


def unwrap(exc: BaseException) -> BaseException:
    """The error to show for a task group's failure: its first non-cancellation error."""
    import asyncio

    while isinstance(exc, BaseExceptionGroup):
        errors = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        exc = (errors or list(exc.exceptions))[0]
    return exc


def said(exc: BaseException) -> str:
    """An error as the command line says it: with its flags, when the library worded it for Python."""
    return getattr(exc, "cli", None) or str(exc)


def print_json(record: Any) -> None:
    """A record (a dataclass, a dict) as one JSON object on stdout: `--json`."""
    data = (
        dataclasses.asdict(record)
        if dataclasses.is_dataclass(record) and not isinstance(record, type)
        else record
    )
    print(json.dumps(data, ensure_ascii=False, default=str), flush=True)
