"""What every command shares: exit codes, the API flags, where the key and the API come from."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from batchgen.config import DEFAULT_API_BASE
from batchgen.errors import UsageError

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


EXIT_OK = 0


EXIT_INCOMPLETE = 1


EXIT_BAD_INPUT = 2


EXIT_HARD_STOP = 130


EPILOG = """\
exit codes:
  0  every job is done
  1  some jobs failed or were left (run the same command again to resume),
     or some results were not delivered (batchgen deliver RUN_DIR sends them)
  2  bad input or usage: nothing was submitted
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


def warn_if_key_flag(args: argparse.Namespace) -> None:
    if getattr(args, "api_key", None):
        print(
            "batchgen: warning: a key given with --api-key shows in `ps` and in shell history; "
            "prefer the OXEN_API_KEY variable",
            file=sys.stderr,
        )


def api_base_of(args: argparse.Namespace) -> str:
    return str(args.api_base or os.environ.get("OXEN_API_BASE") or DEFAULT_API_BASE)


def api_settings(args: argparse.Namespace, *, sandbox: bool) -> tuple[str, str]:
    api_base = api_base_of(args)
    key = args.api_key or os.environ.get("OXEN_API_KEY", "")

    if not key and not sandbox:
        raise UsageError("no API key: set OXEN_API_KEY (or pass --api-key), or try --sandbox")
    return api_base, key


@dataclass(frozen=True, slots=True)
class Endpoint:
    api_base: str
    api_key: str


OFFLINE = object()
