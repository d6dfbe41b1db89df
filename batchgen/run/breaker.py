"""The failure breaker (`run.halt_after_failures`), decided without I/O: which journaled changes finish a
job, whether it failed, and when the failures of this run reach the threshold.

A job finishes when its generation succeeds (`succeeded`) or when it fails for good: `failed` (its
attempts used up, a reference image refused or not placed) or `invalid` (the model refused the request:
the failure a bad prompt template makes, job after job, so it counts). A transient failure that is
retried is not a finish; `cancelled` is a person's choice, not a failure. Only this run's finishes
count: jobs done or failed before it are not the night's figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from batchgen.config import BREAKER_MIN_FINISHED, FailureThreshold
from batchgen.states import IN_FLIGHT, JobState

FAILURES = frozenset({JobState.FAILED, JobState.INVALID})


@dataclass(slots=True)
class FailureBreaker:
    """Counts the finishes of a run's jobs and trips once when the failures reach the threshold."""

    threshold: FailureThreshold
    min_finished: int = BREAKER_MIN_FINISHED
    failed: dict[str, bool] = field(default_factory=dict)  # job key -> it failed (False: it succeeded)
    tripped: str | None = None  # why, in words, once it has tripped

    def finished(self, key: str, old: JobState, new: JobState) -> str | None:
        """Take a journaled change of `key`; returns why the run must stop when this change trips the
        breaker (once: None afterwards)."""
        if new in FAILURES:
            self.failed[key] = True
        elif new is JobState.SUCCEEDED and old in IN_FLIGHT:
            self.failed[key] = False
        else:
            return None
        if self.tripped is None:
            self.tripped = over_threshold(
                self.threshold, sum(self.failed.values()), len(self.failed), self.min_finished
            )
            return self.tripped
        return None


def over_threshold(
    threshold: FailureThreshold, failures: int, finished: int, min_finished: int
) -> str | None:
    """Why `failures` of `finished` jobs stop the run, or None when they do not (yet)."""
    if threshold.count is not None:
        if failures < threshold.count:
            return None
        return f"{failures} job(s) failed, the limit of {threshold} (run.halt_after_failures)"
    assert threshold.percent is not None
    if finished < min_finished or not failures:
        return None
    share = Decimal(failures) * 100 / Decimal(finished)
    if share < threshold.percent:
        return None
    return (
        f"{failures} of {finished} finished jobs failed ({share:.0f}%), reaching the limit of {threshold} "
        "(run.halt_after_failures)"
    )
