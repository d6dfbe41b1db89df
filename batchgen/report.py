"""results.jsonl and results.csv from the journal: one row per planned job."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from batchgen.planning import Job
from batchgen.rundir import atomic_write
from batchgen.store import JobRecord, Journal

FIELDS = (
    "index",
    "key",
    "name",
    "replica",
    "model",
    "state",
    "output_path",
    "generation_id",
    "attempts",
    "sha256",
    "size",
    "cost_usd",
    "error",
)
# A spreadsheet reads a cell starting with one of these as a formula (a tab or CR may hide one):
# text from the server, such as an error message, must never run as one when results.csv is opened.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def result_rows(jobs: Iterable[Job], journal: Journal, videos_prefix: str) -> list[dict[str, Any]]:
    records = journal.records()
    rows = []
    for job in jobs:
        record: JobRecord | None = records.get(job.key)
        rows.append(
            {
                "index": job.index,
                "key": job.key,
                "name": job.name,
                "replica": job.replica,
                "model": job.model,
                "state": str(record.state) if record else "pending",
                "output_path": f"{videos_prefix}/{job.output_path}",
                "generation_id": record.generation_id if record else None,
                "attempts": record.attempts if record else 0,
                "sha256": record.sha256 if record else None,
                "size": record.size if record else None,
                "cost_usd": str(job.cost_usd) if job.cost_usd is not None else None,
                "error": record.error if record else None,
            }
        )
    return rows


def _as_text(value: Any) -> Any:
    """A text cell that a spreadsheet would take for a formula, prefixed with ' so it stays text."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_STARTS) else value


def write_results(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Write both files atomically (a reader never sees half a file); in the CSV, text cells that
    start like a formula get a leading ' (the JSONL keeps every value as it is)."""
    jsonl = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    buffer = io.StringIO()
    # CRLF, as RFC 4180 has it: the csv module quotes only cells holding a character of the line
    # terminator, so with a bare LF a CR inside a server's message would split the row.
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({name: _as_text(value) for name, value in row.items()} for row in rows)
    for name, text in (("results.jsonl", jsonl), ("results.csv", buffer.getvalue())):
        atomic_write(run_dir / name, text)
