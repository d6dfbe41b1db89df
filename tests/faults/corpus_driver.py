"""Runs `batchgen run` (the CLI's `main`) on many argument lists in one process, for the bad-input
fault test: starting one interpreter per case would cost ~0.4 s each.

Reads a JSON list of argument lists on stdin; prints one JSON line per case: exit code, stdout, stderr.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys

from batchgen.cli import main


def run_case(argv: list[str]) -> dict[str, object]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code: object = main(argv)
        except SystemExit as exc:  # argparse refusing a flag
            code = exc.code
    return {"argv": argv, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


if __name__ == "__main__":
    for argv in json.load(sys.stdin):
        print(json.dumps(run_case(argv)), flush=True)
