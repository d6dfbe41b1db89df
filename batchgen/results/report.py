"""results.jsonl and results.csv from the journal: one row per planned job, usable without joining files.

Columns (the same keys in both files), fixed ones first, in this order:

- index, key, name, title, replica, model, state, output_path, generation_id, attempts, sha256, size,
  error: `title` is the job's readable name (`hero · mug · 9:16 · take 2`, batchgen.naming), for
  people; `key` is what programs go by; `output_path` is relative to the run directory (`videos/…`);
- cost_usd: the job's quote; empty for a failed, invalid or cancelled row none of whose generations
  was (or may yet be) charged;
- kept_path: for an `unverified` job, where its bytes are kept (`unverified/<key12>/<file>`; its
  error says why they failed verification); empty otherwise;
- prompt (multi_prompt shots one per line), aspect_ratio, duration_s: from the request;
- billed_cost_usd: what the provider's history says the row's generations were charged, summed over
  those read (0 where it shows a failed or cancelled one was not); empty while none was read (see
  batchgen.run.billing);
- submitted_at, started_at, completed_at, downloaded_at: ISO-8601 UTC (`2026-04-02T00:57:11Z`);
- spent_usd: what the row counts for in the run directory's spend (`batchgen.journal.spend`: every generation
  of the job, earlier attempts included, billed where read, else quoted), so the column sums to the
  figure `ls`, `status` and the report give;
- planned: false for the rows after the plan's, one per job of an earlier version of the manifest that
  made a generation (its result in superseded/, say): paid for, so counted, but not a job of the plan;

then one column per manifest variable, in order of first appearance in the plan (manifest order),
named after the variable, or `var.<name>` when a fixed column has that name (`aspect_ratio` as a
matrix axis, say).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from batchgen.errors import UsageError
from batchgen.isotime import iso_utc
from batchgen.journal.spend import JobCharges, JobSpend, job_spend, journal_charges
from batchgen.journal.store import JobRecord, Journal
from batchgen.naming import readable_names, shown_or_fallback
from batchgen.rundir.layout import atomic_writer, output_relpath, unverified_relpath
from batchgen.states import NO_RESULT, JobState

if TYPE_CHECKING:  # only the type: reading results must not load the planner
    from batchgen.planning import Job

__all__ = [
    "FIELDS",
    "FORMULA_STARTS",
    "TIMES",
    "PlanEntry",
    "PlannedJob",
    "earlier_rows",
    "kept_path",
    "plan_entries",
    "prompt_of",
    "result_columns",
    "result_rows",
    "var_column",
    "write_results",
]

FIELDS = (
    "index",
    "key",
    "name",
    "title",
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
    "kept_path",
    "prompt",
    "aspect_ratio",
    "duration_s",
    "billed_cost_usd",
    "submitted_at",
    "started_at",
    "completed_at",
    "downloaded_at",
    "spent_usd",
    "planned",
)
TIMES = ("submitted_at", "started_at", "completed_at", "downloaded_at")
# A spreadsheet reads a cell starting with one of these as a formula (a tab or CR may hide one):
# text from the server, such as an error message, must never run as one when results.csv is opened.
#: How a cell starts that a spreadsheet would run as a formula (OWASP's list; view.js's export has it too).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class PlanEntry:
    """One job of plan.json (what `batchgen report` has when the manifest is gone or changed)."""

    index: int
    key: str
    name: str
    replica: int
    model: str
    output_path: str
    cost_usd: Decimal | None
    duration_s: int | None
    vars: Mapping[str, Any]
    request: Mapping[str, Any]
    media_type: str = "video"
    title: str = ""  # its readable name (batchgen.naming); plan.json from before titles has none

    @property
    def label(self) -> str:
        return shown_or_fallback(self.title, self.name, self.key)

    @classmethod
    def from_json(cls, job: Mapping[str, Any]) -> PlanEntry:
        cost = job.get("cost_usd")
        duration = job.get("duration_s")
        title = job.get("title")
        return cls(
            index=int(job["index"]),
            key=str(job["key"]),
            name=str(job.get("name", "")),
            title=title if isinstance(title, str) else "",
            replica=int(job.get("replica", 0)),
            model=str(job.get("model", "")),
            output_path=str(job.get("output_path", "")),
            cost_usd=None if cost is None else Decimal(str(cost)),
            duration_s=duration if isinstance(duration, int) and not isinstance(duration, bool) else None,
            vars=dict(job.get("vars") or {}),
            request=dict(job.get("request") or {}),
            media_type=str(job.get("media_type") or "video"),
        )


#: What a results row is made from: a job of the plan, or one read back from plan.json.
PlannedJob: TypeAlias = "Job | PlanEntry"


def plan_entries(plan: Mapping[str, Any], where: Path) -> list[PlanEntry]:
    """The jobs of a plan.json (read from `where`); a plan.json written before batchgen kept readable
    names gets them now, by the same rule, from the jobs' names, variables and replicas."""
    try:
        entries = [PlanEntry.from_json(job) for job in plan.get("jobs", [])]
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise UsageError(f"{where}: a job is not as batchgen writes it ({exc!r})") from None
    if all(entry.title for entry in entries):
        return entries
    titles = readable_names(entries)
    return [replace(entry, title=titles[entry.key]) for entry in entries]


def var_column(name: str) -> str:
    """The results column of a manifest variable: its name, unless a fixed column has it."""
    return f"var.{name}" if name in FIELDS else name


def prompt_of(request: Mapping[str, Any]) -> str:
    """The request's prompt, or its multi_prompt shots one per line ("Shot 1 (5 s): ...")."""
    prompt = request.get("prompt")
    if isinstance(prompt, str) and prompt:
        return prompt
    shots = request.get("multi_prompt")
    if not isinstance(shots, list):
        return ""
    lines = []
    for number, shot in enumerate(shots, 1):
        text = shot.get("prompt", "") if isinstance(shot, Mapping) else shot
        seconds = shot.get("duration") if isinstance(shot, Mapping) else None
        length = f" ({_number(seconds)} s)" if seconds is not None else ""
        lines.append(f"Shot {number}{length}: {text if isinstance(text, str) else json.dumps(text)}")
    return "\n".join(lines)


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


Charges = tuple[Mapping[str, JobCharges], Mapping[str, str | None]]


def result_rows(
    jobs: Iterable[PlannedJob], journal: Journal, videos_prefix: str, charges: Charges | None = None
) -> Iterator[dict[str, Any]]:
    """One row per job, in plan order, made as it is asked for (10,000 rows are never all held).
    `charges`: the journal's (`journal.spend.journal_charges`), when the caller has read them already."""
    records = journal.records()
    by_key, billed = charges or journal_charges(journal)
    for job in jobs:
        record = records.get(job.key)
        share = job_spend(by_key[job.key], billed) if job.key in by_key else JobSpend()
        yield _row(job, record, share, videos_prefix)


def earlier_rows(
    journal: Journal, planned: Collection[str], charges: Charges | None = None
) -> Iterator[dict[str, Any]]:
    """A row per journaled job the plan does not have that made a generation (`planned` false): its
    result (in superseded/, or where an earlier manifest put it) was paid for."""
    by_key, billed = charges or journal_charges(journal)
    for record in sorted(journal.records().values(), key=lambda r: (r.idx, r.key)):
        share = job_spend(by_key[record.key], billed) if record.key in by_key else JobSpend()
        if record.key in planned or not share.generations:
            continue
        body = record.sent_body() or {}
        duration = body.get("duration")
        entry = PlanEntry(
            index=record.idx,
            key=record.key,
            name=record.name,
            title=record.label,
            replica=0,
            model=record.model,
            output_path=record.output_path,
            cost_usd=None if record.quote_usd is None else Decimal(record.quote_usd),
            duration_s=duration if isinstance(duration, int) and not isinstance(duration, bool) else None,
            vars={},
            request=body,
        )
        where = output_relpath(record.output_path, record.key, superseded=record.state is JobState.SUPERSEDED)
        yield {**_row(entry, record, share, "videos", path=where), "replica": None, "planned": False}


def result_columns(jobs: Iterable[PlannedJob]) -> list[str]:
    """The columns `result_rows` gives these jobs: the fixed ones, then each variable's in plan order."""
    return list(dict.fromkeys([*FIELDS, *(var_column(name) for job in jobs for name in job.vars)]))


def _row(
    job: PlannedJob, record: JobRecord | None, share: JobSpend, videos_prefix: str, *, path: str | None = None
) -> dict[str, Any]:
    aspect_ratio = job.request.get("aspect_ratio")
    never_charged = record is not None and record.state in NO_RESULT and not share.charged
    row: dict[str, Any] = {
        "index": job.index,
        "key": job.key,
        "name": job.name,
        "title": job.label,
        "replica": job.replica,
        "model": job.model,
        "state": str(record.state) if record else "pending",
        "output_path": path or f"{videos_prefix}/{job.output_path}",
        "generation_id": record.generation_id if record else None,
        "attempts": record.attempts if record else 0,
        "sha256": record.sha256 if record else None,
        "size": record.size if record else None,
        "cost_usd": str(job.cost_usd) if job.cost_usd is not None and not never_charged else None,
        "error": record.error if record else None,
        "kept_path": kept_path(record),
        "prompt": prompt_of(job.request),
        "aspect_ratio": None if aspect_ratio is None else str(aspect_ratio),
        "duration_s": job.duration_s,
        "billed_cost_usd": None if share.billed is None else str(share.billed),
    }
    for name in TIMES:
        row[name] = iso_utc(getattr(record, name)) if record else None
    row["spent_usd"] = str(share.total)
    row["planned"] = True
    for name, value in job.vars.items():
        row[var_column(name)] = value
    return row


def kept_path(record: JobRecord | None) -> str | None:
    """Where an unverified job's kept bytes are (its card and row show them); None for any other job."""
    if record is None or record.state is not JobState.UNVERIFIED:
        return None
    return unverified_relpath(record.output_path, record.key)


def _cell(value: Any) -> Any:
    """A CSV cell: text a spreadsheet would take for a formula is prefixed with ' so it stays text."""
    kind = type(value)
    if kind is str:
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    if value is None or kind is int:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def write_results(run_dir: Path, rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str]) -> None:
    """Write both files atomically (a reader never sees half a file), row by row, in the columns
    `fieldnames` (`result_columns`); in the CSV, text cells that start like a formula get a leading '
    (the JSONL keeps every value as it is)."""
    with atomic_writer(run_dir / "results.jsonl") as jsonl, atomic_writer(run_dir / "results.csv") as table:
        # CRLF, as RFC 4180 has it: the csv module quotes only cells holding a character of the line
        # terminator, so with a bare LF a CR inside a server's message would split the row.
        writer = csv.DictWriter(table, fieldnames=fieldnames, lineterminator="\r\n")
        writer.writeheader()
        for row in rows:
            jsonl.write(json.dumps(row, sort_keys=True) + "\n")
            writer.writerow({name: _cell(value) for name, value in row.items()})
