"""The run directory's spend as a table: which generations count, at what, and the words that say it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from batchgen.journal.spend import (
    JobCharges,
    Spend,
    describe,
    job_spend,
    journal_charges,
    journal_spend,
    spend_of,
)
from batchgen.journal.store import Journal, PlanRow
from batchgen.states import JobState

Q = Decimal("1.120")


def job(
    key: str, state: str, *generations: str, planned: bool = True, quote: Decimal | None = Q
) -> JobCharges:
    return JobCharges(key, state, planned, quote, generations)


@pytest.mark.parametrize(
    ("charges", "billed", "total", "read"),
    [
        (job("a", "pending"), {}, "0", 0),  # never submitted: nothing
        (job("a", "submitting"), {}, "1.120", 0),  # its POST may have created one
        (job("a", "done", "g1"), {}, "1.120", 0),  # the quote until the history is read
        (job("a", "done", "g1"), {"g1": "1.10"}, "1.10", 1),  # then what was billed
        (job("a", "failed", "g1"), {"g1": None}, "0", 1),  # failed, and the history says not charged
        (job("a", "failed", "g1"), {}, "1.120", 0),  # failed, not read yet: it may have been charged
        (job("a", "done", "g1", "g2"), {"g1": None, "g2": "1.12"}, "1.12", 2),  # a retry: both read
        (job("a", "pending", "g1"), {}, "1.120", 0),  # failed transiently, waiting to go again
        (job("a", "submitting", "g1"), {"g1": None}, "1.120", 1),  # the retry's POST is in doubt
        (job("a", "superseded", "g1", planned=False), {"g1": "1.12"}, "1.12", 1),
        (job("a", "done", "g1", quote=None), {}, "0", 0),  # unpriced: counted as 0, and said so
        (job("a", "done", "g1"), {"g1": "n/a"}, "1.120", 0),  # an unreadable cost is not a cost
    ],
)
def test_every_generation_counts_at_its_billed_cost_else_its_quote(
    charges: JobCharges, billed: dict[str, str | None], total: str, read: int
) -> None:
    """A job's share: each generation ever claimed for it, and a `submitting` attempt, at the history's
    cost where read (0 where it shows none charged), else at the job's quote."""
    share = job_spend(charges, billed)
    assert (share.total, share.read) == (Decimal(total), read)
    assert share.total == (share.billed or 0) + share.quoted


def test_the_spend_sums_every_job_and_says_what_is_outside_the_plan() -> None:
    """Superseded and no-longer-planned jobs count in the total, and apart; `planned` overrides the
    journal's flags (a plan not run yet)."""
    jobs = [
        job("a", "done", "g1"),
        job("b", "done", "g2"),
        job("c", "superseded", "g3", planned=False),
        job("d", "failed", "g4", "g5", planned=False),
        job("e", "pending"),
    ]
    billed = {"g1": "1.12", "g3": "1.12", "g4": None}
    spend = spend_of(jobs, billed)
    assert spend == Spend(
        total=Decimal("4.480"),
        billed=Decimal("2.24"),
        quoted=Decimal("2.240"),
        outside_plan=Decimal("2.240"),
        generations=5,
        billed_generations=3,
        outside_generations=3,
    )
    assert spend_of(jobs, billed, planned={"a", "b", "c", "d"}).outside_plan == 0
    assert describe(spend) == (
        "$4.48 spent by this run directory (5 generations: $2.24 billed, $2.24 quoted; "
        "$2.24 of it for jobs no longer in the plan)"
    )


@pytest.mark.parametrize(
    ("spend", "words"),
    [
        (Spend(), "$0.00 spent by this run directory (no generation yet)"),
        (
            Spend(Decimal("1.12"), Decimal("1.12"), generations=1, billed_generations=1),
            "$1.12 spent by this run directory (1 generation, as billed)",
        ),
        (
            Spend(Decimal("2.24"), quoted=Decimal("2.24"), generations=2, unpriced=1),
            "$2.24 spent by this run directory (2 generations, at their quotes; 1 without a price, counted as $0)",
        ),
    ],
)
def test_the_words_say_what_the_figure_counts(spend: Spend, words: str) -> None:
    """The spend sentence says how many generations and whether billed or quoted (with any unpriced), and the
    sandbox adds 'nothing paid'."""
    assert describe(spend) == words
    assert describe(spend, sandbox=True).endswith("; sandbox: nothing paid)")


def test_the_journal_keeps_every_claim_and_each_jobs_quote(tmp_path: Path) -> None:
    """Read from a journal: an earlier attempt's generation still counts after the job was submitted
    again, and a job's quote stays once it leaves the plan."""
    journal = Journal.open(tmp_path)
    a, b = (
        PlanRow("a", 0, "hero", "m", "a.mp4", "1.120", None),
        PlanRow("b", 1, "hero", "m", "b.mp4", "2.240", None),
    )
    journal.plan_jobs([a, b])
    journal.transition("a", JobState.SUBMITTING)
    journal.claim_generation("a", "g1", 1, JobState.QUEUED)
    journal.transition("a", JobState.PENDING, "retry")
    journal.transition("a", JobState.SUBMITTING, generation_id=None)
    journal.claim_generation("a", "g2", 2, JobState.QUEUED)
    journal.record_billed_costs({"g1": None})
    journal.plan_jobs([a])  # b leaves the plan
    journal.transition("b", JobState.SUBMITTING)
    assert journal_spend(journal) == Spend(
        total=Decimal("3.360"),
        billed=Decimal(0),
        quoted=Decimal("3.360"),
        outside_plan=Decimal("2.240"),
        generations=3,
        billed_generations=1,
        outside_generations=1,
    )
    journal.close()
    reopened = Journal.open(tmp_path)
    assert reopened.get("b").quote_usd == "2.240"
    jobs, billed = journal_charges(reopened)
    assert [(j.key, j.generations) for j in jobs.values()] == [("a", ("g1", "g2")), ("b", ())]
    assert billed == {"g1": None}
    reopened.close()


def test_the_spend_is_summed_again_after_every_commit_and_always_for_a_reader(tmp_path: Path) -> None:
    """`journal_spend` keeps its sum only until the journal's next commit; a read-only journal (a
    `status` beside a live run) never keeps it, since another process writes the file."""
    writer = Journal.open(tmp_path)
    writer.plan_jobs([PlanRow("a", 0, "hero", "m", "a.mp4", "1.120", None)])
    reader = Journal.open_existing(tmp_path, read_only=True)
    assert journal_spend(writer).generations == journal_spend(reader).generations == 0
    writer.transition("a", JobState.SUBMITTING)
    writer.claim_generation("a", "g1", 1, JobState.QUEUED)
    assert journal_spend(writer).total == Decimal("1.120")
    assert journal_spend(reader).total == Decimal("1.120")
    writer.record_billed_costs({"g1": "0.50"})
    assert journal_spend(writer).total == journal_spend(reader).total == Decimal("0.50")
    reader.close()
    writer.close()
