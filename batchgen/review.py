"""The files a person reviews the morning after: results.jsonl/.csv and report.html, from the journal.

`write_outputs` is what a run does at its end; `refresh` is `batchgen report RUN_DIR`: the same files
from the run directory alone (plan.json and the journal), offline, for a run that was interrupted,
killed, or is still going. Only jobs of the current plan are shown: results of an earlier manifest
(set aside in superseded/, or no longer planned) never are.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from batchgen.config import SANDBOX_IDENTITY
from batchgen.errors import UsageError
from batchgen.report import PlanEntry, PlannedJob, result_rows, write_results
from batchgen.report_html import load_report, read_plan, write_report
from batchgen.rundir import VIDEOS_DIR
from batchgen.store import JOURNAL_NAME, Journal

__all__ = ["refresh", "write_outputs"]


def write_outputs(run_dir: Path, jobs: Iterable[PlannedJob], journal: Journal) -> Path:
    """results.jsonl and results.csv from the journal, then report.html from them; the report's path."""
    write_results(run_dir, result_rows(jobs, journal, VIDEOS_DIR))
    return _write_report(run_dir, journal.meta("api"))


def refresh(run_dir: Path) -> Path:
    """`write_outputs` from what the run directory holds, reading nothing from the network. Without a
    journal (a copy handed over without state.sqlite), the report is made from results.jsonl as it is."""
    plan = read_plan(run_dir)
    if not (run_dir / JOURNAL_NAME).is_file():
        return _write_report(run_dir, None)
    try:
        jobs = [PlanEntry.from_json(job) for job in plan.get("jobs", [])]
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise UsageError(f"{run_dir / 'plan.json'}: a job is not as batchgen writes it ({exc!r})") from None
    journal = Journal.open_existing(run_dir)
    try:
        return write_outputs(run_dir, jobs, journal)
    finally:
        journal.close()


def _write_report(run_dir: Path, api: str | None) -> Path:
    sandbox = api == SANDBOX_IDENTITY
    header, cards = load_report(run_dir, sandbox=sandbox, api_origin=None if sandbox else api)
    return write_report(run_dir, header, cards)
