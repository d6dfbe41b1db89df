"""What a run directory has spent: every generation its journal knows was created at the provider.

The provider bills generations, not jobs, and one run directory makes more of them than its plan has
jobs: a generation that failed transiently is submitted again, a job an edited manifest no longer has
keeps its paid result in superseded/, a cancelled job is submitted again by the next run. Every money
figure batchgen shows (the progress line, `plan`'s budget line, `ls`, `status`, `run --json`,
results.* and the report's header) and the budget's check before each POST start from `spend_of`:

- every generation claimed for any job (the journal's `generations` table, earlier attempts included),
  planned or not, whatever its job's state is now;
- one more for each job journaled `submitting`: its POST may have created a generation;
- each at what the provider's history billed it, where that is journaled (0 where the history shows a
  failed or cancelled one was not charged), else at its job's quote.

`spend_of` and `job_spend` are pure; `journal_charges` reads what they count from a journal.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from batchgen.registry.pricing import format_usd, rate
from batchgen.states import JobState

if TYPE_CHECKING:
    from batchgen.journal.store import Journal

__all__ = [
    "JobCharges",
    "JobSpend",
    "Spend",
    "counted",
    "describe",
    "job_spend",
    "journal_charges",
    "journal_spend",
    "spend_of",
]

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class JobCharges:
    """What the journal knows of one job's generations."""

    key: str
    state: str
    planned: bool
    quote: Decimal | None  # by the latest plan that held the job
    generations: tuple[str, ...] = ()  # every generation claimed for it, oldest first


@dataclass(frozen=True, slots=True)
class JobSpend:
    """One job's share of the spend."""

    total: Decimal = ZERO  # billed + quoted
    billed: Decimal | None = None  # what the history billed its generations read so far (None: none read)
    quoted: Decimal = ZERO  # the quotes of its generations not read yet
    generations: int = 0  # generations that count (a `submitting` attempt is one)
    read: int = 0  # of those, how many the history has been read for
    unpriced: int = 0  # not read, and the job has no quote: counted as 0

    @property
    def charged(self) -> bool:
        """Some generation of the job was, or may yet be, charged."""
        return self.generations > self.read or bool(self.billed)


@dataclass(frozen=True, slots=True)
class Spend:
    """A run directory's spend. `outside_plan` is the part for jobs the current plan does not have."""

    total: Decimal = ZERO
    billed: Decimal = ZERO  # of the total, read from the provider's history
    quoted: Decimal = ZERO  # of the total, quotes of generations not read yet
    outside_plan: Decimal = ZERO
    generations: int = 0
    billed_generations: int = 0
    outside_generations: int = 0
    unpriced: int = 0  # generations with neither a billed cost nor a quote (counted as 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "total_usd": str(self.total),
            "billed_usd": str(self.billed),
            "quoted_usd": str(self.quoted),
            "outside_plan_usd": str(self.outside_plan),
            "generations": self.generations,
            "billed_generations": self.billed_generations,
            "outside_plan_generations": self.outside_generations,
            "unpriced_generations": self.unpriced,
        }


# A run directory's costs and quotes are a handful of distinct strings, read for every job on each start.
_rate = lru_cache(maxsize=4096)(rate)


def _billed(billed: Mapping[str, str | None], generation_id: str) -> Decimal | None:
    """What the history billed a generation; None when it has not been read (or is unreadable)."""
    if generation_id not in billed:
        return None
    cost = billed[generation_id]
    return ZERO if cost is None else _rate(cost)  # None: finished, and the history shows no charge


def job_spend(job: JobCharges, billed: Mapping[str, str | None]) -> JobSpend:
    """The job's generations, each at its billed cost where read, else at the job's quote."""
    count = len(job.generations) + (job.state == JobState.SUBMITTING)
    known = [cost for g in job.generations if (cost := _billed(billed, g)) is not None]
    unread = count - len(known)
    quoted = (job.quote or ZERO) * unread if unread else ZERO
    billed_sum = sum(known, ZERO) if known else None
    return JobSpend(
        total=(billed_sum or ZERO) + quoted,
        billed=billed_sum,
        quoted=quoted,
        generations=count,
        read=len(known),
        unpriced=unread if job.quote is None else 0,
    )


def spend_of(
    jobs: Iterable[JobCharges], billed: Mapping[str, str | None], planned: Collection[str] | None = None
) -> Spend:
    """The run directory's spend. `planned`: the keys of the current plan (default: the journal's
    `planned` flags, i.e. the plan of its latest run)."""
    total = billed_sum = quoted = outside = ZERO
    generations = read = outside_generations = unpriced = 0
    for job in jobs:
        share = job_spend(job, billed)
        total += share.total
        billed_sum += share.billed or ZERO
        quoted += share.quoted
        generations += share.generations
        read += share.read
        unpriced += share.unpriced
        if not (job.key in planned if planned is not None else job.planned):
            outside += share.total
            outside_generations += share.generations
    return Spend(total, billed_sum, quoted, outside, generations, read, outside_generations, unpriced)


def counted(spend: Spend, *, sandbox: bool = False) -> str:
    """What the total counts, in words: `16 generations, as billed; $4.48 of it for jobs no longer in
    the plan`."""
    if not spend.generations:
        what = "no generation yet"
    else:
        what = f"{spend.generations} generation{'' if spend.generations == 1 else 's'}"
        if spend.billed_generations == spend.generations:
            what += ", as billed"
        elif not spend.billed_generations:
            what += ", at their quotes"
        else:
            what += f": {format_usd(spend.billed)} billed, {format_usd(spend.quoted)} quoted"
    if spend.outside_generations:
        what += f"; {format_usd(spend.outside_plan)} of it for jobs no longer in the plan"
    if spend.unpriced:
        what += f"; {spend.unpriced} without a price, counted as $0"
    if sandbox:
        what += "; sandbox: nothing paid"
    return what


def describe(spend: Spend, *, sandbox: bool = False) -> str:
    """`$17.92 spent by this run directory (16 generations, as billed; $4.48 of it for jobs no longer in
    the plan)`: the total, and in words what it counts."""
    return f"{format_usd(spend.total)} spent by this run directory ({counted(spend, sandbox=sandbox)})"


def journal_charges(
    journal: Journal, fallback_quotes: Mapping[str, Decimal] | None = None
) -> tuple[dict[str, JobCharges], dict[str, str | None]]:
    """Every job of an open journal (by key, in plan order) with its generations, and the billed costs
    journaled; its queued changes are committed first. `fallback_quotes` (plan.json's) serve a journal
    from before the quote was kept in it."""
    journal.flush()
    claimed: dict[str, list[str]] = {}
    for generation_id, key in journal.read_rows(
        "SELECT generation_id, job_key FROM generations ORDER BY created_at"
    ):
        claimed.setdefault(str(key), []).append(str(generation_id))
    jobs = {}
    for record in sorted(journal.records().values(), key=lambda r: (r.idx, r.key)):
        ids = claimed.get(record.key, [])
        if record.generation_id and record.generation_id not in ids:  # a journal from before claims were kept
            ids.append(record.generation_id)
        quote = (
            _rate(record.quote_usd)
            if record.quote_usd is not None
            else (fallback_quotes or {}).get(record.key)
        )
        jobs[record.key] = JobCharges(record.key, str(record.state), record.planned, quote, tuple(ids))
    return jobs, journal.billed_costs()


def journal_spend(journal: Journal, planned: Collection[str] | None = None) -> Spend:
    """The spend of the run directory whose journal this is (summed again only after a commit)."""
    journal.flush()
    cached = journal.spend_cache
    if planned is None and cached is not None and cached[0] == journal.revision >= 0:
        return cast(Spend, cached[1])
    jobs, billed = journal_charges(journal)
    spend = spend_of(jobs.values(), billed, planned)
    if planned is None:
        journal.spend_cache = (journal.revision, spend)
    return spend
