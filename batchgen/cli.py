"""The command line: argparse, --help texts, exit codes, one clear message per error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from batchgen import __version__
from batchgen.errors import BatchgenError, UserError

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchgen",
        description="Run large batches of Oxen.ai video and image generations from a YAML manifest.",
    )
    parser.add_argument("--version", action="version", version=f"batchgen {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return EXIT_OK
    except UserError as exc:
        print(f"batchgen: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BatchgenError as exc:
        print(f"batchgen: error: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE
