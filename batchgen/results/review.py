"""The files a person reviews the morning after: results.jsonl/.csv and report.html, from the journal.

`write_outputs` is what a run does at its end; `refresh` is `batchgen report RUN_DIR`: the same files
from the run directory alone (plan.json and the journal), offline, for a run that was interrupted,
killed, or is still going. The report shows a card for each job of the current plan only; the results
files end with a row (`planned` false) per job of an earlier manifest that made a generation, and the
report's spend counts those too: every figure adds up to what the run directory paid for.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from batchgen import __version__
from batchgen.config import SANDBOX_IDENTITY
from batchgen.journal.session import Session
from batchgen.journal.spend import journal_charges, spend_of
from batchgen.journal.store import JOURNAL_NAME, Journal
from batchgen.results.report import (
    PlannedJob,
    earlier_rows,
    kept_path,
    plan_entries,
    result_columns,
    result_rows,
    write_results,
)
from batchgen.results.report_data import ReportBuilder, load_report, read_plan
from batchgen.results.report_html import REPORT_NAME, write_report
from batchgen.rundir.layout import PLAN_NAME, VIDEOS_DIR

__all__ = ["refresh", "write_outputs", "write_outputs_unless_current"]


def write_outputs(run_dir: Path, jobs: Sequence[PlannedJob], journal: Journal, *, campaign: str) -> Path:
    """results.jsonl and results.csv from the journal, and report.html with them (each job's card is
    made as its row is written: no row is held); the report's path. The results end with a row per
    job of an earlier manifest that made a generation, so that they account for every generation the
    run directory paid for; the report counts them in its spend but has no card for them."""
    report = ReportBuilder(run_dir)
    charges = journal_charges(journal)
    planned = {job.key for job in jobs}

    def rows() -> Iterator[dict[str, Any]]:
        for job, row in zip(jobs, result_rows(jobs, journal, VIDEOS_DIR, charges), strict=True):
            report.add(job, row)
            yield row
        yield from earlier_rows(journal, planned, charges)

    write_results(run_dir, rows(), result_columns(jobs))
    api = journal.meta("api")
    sandbox = api == SANDBOX_IDENTITY
    spend = spend_of(charges[0].values(), charges[1], planned)
    header = report.header(campaign, spend=spend, sandbox=sandbox, api_origin=None if sandbox else api)
    return write_report(run_dir, header, report.cards)


def write_outputs_unless_current(
    run_dir: Path, jobs: Sequence[PlannedJob], journal: Journal, *, campaign: str
) -> Path:
    """`write_outputs`, skipped when the files exist and were made from the same journal, plan and
    manifest (a rerun of a finished run changes nothing: rewriting 20,000 rows and cards took seconds)."""
    inputs = _inputs_digest(run_dir, jobs, journal, campaign)
    report = run_dir / REPORT_NAME
    made = [run_dir / name for name in ("results.jsonl", "results.csv")] + [report]
    if journal.meta(_OUTPUTS_OF) == inputs and all(path.is_file() for path in made):
        return report
    report = write_outputs(run_dir, jobs, journal, campaign=campaign)
    journal.set_meta(_OUTPUTS_OF, inputs)
    return report


_OUTPUTS_OF = "outputs_made_from"  # the journal's meta row holding `_inputs_digest` of the files written


def _inputs_digest(run_dir: Path, jobs: Sequence[PlannedJob], journal: Journal, campaign: str) -> str:
    digest = hashlib.sha256(repr((__version__, campaign, journal.digest())).encode())
    records = journal.records()
    for j in jobs:  # a job at a time (see Journal.digest); with whether its card's file is there
        shown = kept_path(records.get(j.key)) or f"{VIDEOS_DIR}/{j.output_path}"
        exists = os.path.isfile(os.path.join(run_dir, shown))
        digest.update(repr((j.key, j.index, j.label, j.output_path, dict(j.vars), exists)).encode())
    with contextlib.suppress(OSError):  # the report's settings (title, grouping, budget) come from it
        digest.update((run_dir / "manifest.yaml").read_bytes())
    return digest.hexdigest()


def refresh(run_dir: Path) -> Path:
    """`write_outputs` from what the run directory holds, reading nothing from the network. Without a
    journal (a copy handed over without state.sqlite), the report is made from results.jsonl as it is."""
    plan = read_plan(run_dir)
    if not (run_dir / JOURNAL_NAME).is_file():
        header, cards = load_report(run_dir)
        return write_report(run_dir, header, cards)
    jobs = plan_entries(plan, run_dir / PLAN_NAME)
    campaign = str(plan.get("name") or run_dir.name)
    del plan
    with Session.reading(run_dir) as session:  # an empty journal is refused, never rewritten
        return write_outputs(run_dir, jobs, session.journal, campaign=campaign)
