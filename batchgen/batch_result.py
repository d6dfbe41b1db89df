"""What a run did (`BatchResult`), as the library returns it and `batchgen run --json` prints it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchgen.planning import Plan
from batchgen.runner import RunOutcome
from batchgen.states import JobState
from batchgen.store import Journal

__all__ = ["BatchResult", "JobProblem", "problems_of"]

_FAILED = frozenset({JobState.FAILED, JobState.INVALID, JobState.CANCELLED})


@dataclass(frozen=True, slots=True)
class JobProblem:
    """A job of the run that is not done and failed, was rejected, cancelled, or carries an error."""

    key: str
    name: str
    state: str
    error: str | None
    output_path: str


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a run did: where, the runner's outcome, and how many jobs it ran (the plan's, or those
    `only` chose; `left_for_later` counts the plan's others)."""

    run_dir: Path
    outcome: RunOutcome
    total: int
    problems: tuple[JobProblem, ...] = ()
    left_for_later: int = 0

    @property
    def complete(self) -> bool:
        """Every job of the plan is done and nothing went wrong."""
        return self.outcome.counts.get("done", 0) == self.total and not self.outcome.fatal

    @property
    def reason(self) -> str:
        """Why the run ended: complete, bad_key, error, a stop reason (budget, no_credits, interrupted,
        api_unavailable, cancelled), or incomplete (some jobs failed or were rejected)."""
        if self.outcome.bad_key:
            return "bad_key"
        if self.outcome.fatal:
            return "error"
        if self.outcome.stop_reason is not None:
            return str(self.outcome.stop_reason)
        return "complete" if self.complete else "incomplete"

    def summary(self) -> dict[str, Any]:
        """The outcome as JSON-ready data (`batchgen run --json`)."""
        return {
            "run_dir": str(self.run_dir),
            "reason": self.reason,
            "complete": self.complete,
            "jobs": self.total,
            "counts": dict(sorted(self.outcome.counts.items())),
            "left_for_later": self.left_for_later,
            "committed_usd": str(self.outcome.spent_usd),
            "error": self.outcome.fatal,
            "failures": [
                {
                    "key": p.key,
                    "name": p.name,
                    "state": p.state,
                    "error": p.error,
                    "output_path": p.output_path,
                }
                for p in self.problems
            ],
            "earlier_manifests": dict(sorted(self.outcome.leftovers.items())),
        }


def problems_of(plan: Plan, journal: Journal) -> tuple[JobProblem, ...]:
    """The jobs of `plan` that are not done and failed, were rejected or cancelled, or carry an error."""
    found = []
    for job in plan.jobs:
        record = journal.get(job.key)
        if record.state is not JobState.DONE and (record.error or record.state in _FAILED):
            found.append(JobProblem(job.key, job.name, str(record.state), record.error, job.output_path))
    return tuple(found)
