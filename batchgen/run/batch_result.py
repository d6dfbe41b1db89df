"""What a run did (`BatchResult`, with a `JobResult` per job), as the library returns it and
`batchgen run --json` prints it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.journal.spend import Spend
from batchgen.journal.store import Journal
from batchgen.planning import Plan
from batchgen.run.runner import RunOutcome
from batchgen.rundir.layout import result_relpath, unverified_relpath
from batchgen.states import JobState

if TYPE_CHECKING:
    from batchgen.sinks.oxen.run import DeliverySummary

__all__ = ["BatchResult", "JobResult", "job_results"]

_FAILED = frozenset({JobState.FAILED, JobState.INVALID, JobState.CANCELLED, JobState.UNVERIFIED})
_FAILURE_FIELDS = ("key", "name", "title", "state", "error", "output_path", "kept_path")  # `--json`'s


@dataclass(frozen=True, slots=True)
class JobResult:
    """A job the run worked on, as its journal has it at the end."""

    key: str
    name: str
    title: str  # its readable name (`hero · mug · 9:16 · take 2`): how a person knows it
    state: JobState
    output_path: str  # where its result goes, relative to the run directory (`videos/…`)
    path: Path  # the same in the run directory: the verified result once `state` is done
    sha256: str | None
    size: int | None
    generation_id: str | None
    cost_usd: Decimal | None  # its quote (results.jsonl has what the provider billed, once read)
    error: str | None = None
    kept_path: str | None = None  # unverified: where its bytes are kept (relative to the run directory)

    @property
    def problem(self) -> bool:
        """It is not done, and failed, was rejected or cancelled, or carries an error."""
        return self.state is not JobState.DONE and (bool(self.error) or self.state in _FAILED)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a run did: where, the runner's outcome, and the jobs it ran (the plan's, or those `only`
    chose; `left_for_later` counts the plan's others)."""

    run_dir: Path
    outcome: RunOutcome
    jobs: tuple[JobResult, ...] = ()
    left_for_later: int = 0
    delivery: DeliverySummary | None = None  # with a delivery target: what reached the repository
    report: Path | None = None  # report.html, the contact sheet (None if it could not be written)
    spend: Spend | None = None  # the run directory's spend at the end (None if the journal could not say)
    sandbox: bool = False  # run against the built-in emulator: nothing was paid

    @property
    def total(self) -> int:
        return len(self.jobs)

    @property
    def problems(self) -> tuple[JobResult, ...]:
        """The jobs that are not done and failed, were rejected or cancelled, or carry an error."""
        return tuple(job for job in self.jobs if job.problem)

    @property
    def complete(self) -> bool:
        """Every job it ran is done, nothing went wrong, and every result was delivered."""
        delivered = self.delivery is None or self.delivery.complete
        return self.outcome.counts.get("done", 0) == self.total and not self.outcome.fatal and delivered

    @property
    def reason(self) -> str:
        """Why the run ended: complete, bad_key, error, a stop reason (budget, no_credits, interrupted,
        api_unavailable, cancelled, failures), undelivered (every job is done but some results did not reach the
        delivery repository), unverified (every job is done but some whose results failed verification:
        `batchgen unverified`), or incomplete (some jobs failed or were rejected)."""
        if self.outcome.bad_key:
            return "bad_key"
        if self.outcome.fatal:
            return "error"
        if self.outcome.stop_reason is not None:
            return str(self.outcome.stop_reason)
        if self.complete:
            return "complete"
        done, unverified = self.outcome.counts.get("done", 0), self.outcome.counts.get("unverified", 0)
        if unverified and done + unverified == self.total:
            return "unverified"
        return "undelivered" if done == self.total and self.delivery is not None else "incomplete"

    def summary(self) -> dict[str, Any]:
        """The outcome as JSON-ready data (`batchgen run --json`)."""
        return {
            "run_dir": str(self.run_dir),
            "reason": self.reason,
            "complete": self.complete,
            "jobs": self.total,
            "counts": dict(sorted(self.outcome.counts.items())),
            "left_for_later": self.left_for_later,
            # the run directory's spend (every generation, billed where read), as `ls` and `status` say it
            "committed_usd": str(self.spend.total if self.spend else self.outcome.spent_usd),
            "spend": None if self.spend is None else {**self.spend.as_json(), "sandbox": self.sandbox},
            "error": self.outcome.fatal,
            "stop_detail": self.outcome.stop_detail,
            "failures": [{name: getattr(job, name) for name in _FAILURE_FIELDS} for job in self.problems],
            "earlier_manifests": dict(sorted(self.outcome.leftovers.items())),
            "extra_takes": dict(sorted(self.outcome.takes.items())),
            "delivery": None if self.delivery is None else _delivery_summary(self.delivery),
            "report": None if self.report is None else str(self.report),
            "drain_timed_out": self.outcome.drain_timed_out,
        }


def _delivery_summary(delivery: DeliverySummary) -> dict[str, Any]:
    return {
        "target": delivery.target,
        "files": delivery.wanted,
        "delivered": delivery.delivered,
        "sent_now": delivery.files_sent,
        "commits_now": delivery.commits,
        "missing": [{"path": path, "why": why} for path, why in delivery.missing],
        "stopped": delivery.stopped,
    }


def job_results(plan: Plan, journal: Journal, run_dir: Path) -> tuple[JobResult, ...]:
    """A `JobResult` per job of `plan`, from its journal."""
    found = []
    for job in plan.jobs:
        record, path = journal.get(job.key), result_relpath(job.output_path)
        unverified = record.state is JobState.UNVERIFIED
        found.append(
            JobResult(
                key=job.key,
                name=job.name,
                title=job.label,
                state=record.state,
                output_path=path,
                path=run_dir / path,
                sha256=record.sha256,
                size=record.size,
                generation_id=record.generation_id,
                cost_usd=job.cost_usd,
                error=record.error,
                kept_path=unverified_relpath(record.output_path, record.key) if unverified else None,
            )
        )
    return tuple(found)
