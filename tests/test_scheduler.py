"""The scheduler's rules as tables: concurrency, the shared pause, the budget, retries, stops, leftovers."""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from pathlib import Path

import pytest

from batchgen.run import scheduler
from batchgen.run.scheduler import RunState, Slots, Stop, StopReason, Submit, Wait
from batchgen.states import JobState

COST = Decimal("1.12")


def state(
    pending: list[str],
    *,
    capacity: int = 2,
    budget: str | None = None,
    held: tuple[str, ...] = (),
    retries: int = 2,
    leftovers: tuple[str, ...] = (),
) -> RunState:
    keys = [*pending, *held, *leftovers]
    run = RunState(
        costs=dict.fromkeys(keys, COST),
        slots=Slots(capacity, held=set(held)),
        budget=scheduler.Budget(None if budget is None else Decimal(budget)),
        retries=retries,
        pending=deque(pending),
        leftovers=set(leftovers),
    )
    for key in held:
        run.budget.bill(key, COST)
    return run


@pytest.mark.parametrize(
    ("pending", "held", "capacity", "budget", "now", "pause_until", "expected"),
    [
        (["a"], (), 2, None, 0.0, 0.0, Submit("a")),
        ([], (), 2, None, 0.0, 0.0, None),  # nothing left to submit
        (["a"], ("x", "y"), 2, None, 0.0, 0.0, Wait(None, "all 2 provider slots in use")),
        (["a"], ("x",), 2, None, 5.0, 9.0, Wait(9.0, "the API asked us to wait (429)")),
        (["a"], ("x",), 2, None, 9.0, 9.0, Submit("a")),  # the pause is over
        (["a"], (), 2, "2.00", 0.0, 0.0, Submit("a")),
        (["a"], ("x",), 2, "2.00", 0.0, 0.0, Stop(StopReason.BUDGET)),  # 1.12 held + 1.12 > 2.00
        (["a"], ("x",), 2, "2.24", 0.0, 0.0, Submit("a")),  # exactly the budget is allowed
    ],
)
def test_next_submission(
    pending: list[str],
    held: tuple[str, ...],
    capacity: int,
    budget: str | None,
    now: float,
    pause_until: float,
    expected: object,
) -> None:
    """What the submit loop does next, from slots, the shared 429 pause and the budget."""
    run = state(pending, capacity=capacity, budget=budget, held=held)
    run.pause.until = pause_until
    if isinstance(expected, Wait):
        decision = scheduler.next_submission(run, now)
        assert isinstance(decision, Wait) and decision.until == expected.until
    else:
        assert scheduler.next_submission(run, now) == expected


def test_the_pause_is_checked_before_the_slots_and_the_budget() -> None:
    """During a 429 pause nothing is submitted, even with free slots and money left."""
    run = state(["a"], capacity=8, budget="100")
    run.pause.extend(30.0)
    run.pause.extend(10.0)  # a shorter pause never shortens the one in force
    assert scheduler.next_submission(run, 0.0) == Wait(30.0, "the API asked us to wait (429)")


def test_a_stopped_run_submits_nothing() -> None:
    """Once stopping, no submission whatever is pending; the first reason sticks."""
    run = state(["a", "b"])
    assert scheduler.stop(run, StopReason.INTERRUPTED)
    assert not scheduler.stop(run, StopReason.BUDGET)
    assert run.stopping is StopReason.INTERRUPTED
    assert scheduler.next_submission(run, 0.0) is None


def test_dispatch_takes_a_slot_bills_and_counts_the_attempt() -> None:
    """A dispatched job holds a slot and counts as spent before anything is journaled."""
    run = state(["a", "b"], budget="2.24")
    scheduler.dispatch(run, "a")
    assert run.slots.held == {"a"} and list(run.pending) == ["b"]
    assert run.budget.spent == COST and run.run_attempts["a"] == 1
    with pytest.raises(RuntimeError):
        scheduler.dispatch(run, "a")  # only the next job can be dispatched


def test_a_job_put_back_by_a_429_still_counts_against_the_budget() -> None:
    """Journaled pending again while holding its slot: still billed, so no other job takes its money."""
    run = state(["a", "b"], budget="1.12")
    scheduler.dispatch(run, "a")
    scheduler.journaled(run, "a", JobState.SUBMITTING)
    scheduler.journaled(run, "a", JobState.PENDING)  # a 429: not created, but it will be sent again
    assert run.budget.spent == COST
    assert scheduler.next_submission(run, 0.0) == Stop(StopReason.BUDGET)


@pytest.mark.parametrize(
    ("end", "billed"),
    [
        (JobState.SUCCEEDED, True),
        (JobState.DONE, True),
        (JobState.FAILED, False),
        (JobState.CANCELLED, False),
        (JobState.INVALID, False),
        (JobState.PENDING, False),
        (JobState.SUBMITTING, True),
    ],
)
def test_releasing_a_slot_keeps_the_spend_only_when_a_generation_may_exist(
    end: JobState, billed: bool
) -> None:
    """Giving the slot back unbills a job unless its generation exists or may exist (or is paid for)."""
    run = state(["a"])
    scheduler.dispatch(run, "a")
    scheduler.release(run, "a", end)
    assert not run.slots.held
    assert run.budget.spent == (COST if billed else 0)


@pytest.mark.parametrize("end", [JobState.PENDING, JobState.FAILED, JobState.CANCELLED, JobState.INVALID])
def test_a_generation_once_created_stays_spent_whatever_becomes_of_it(end: JobState) -> None:
    """Claimed (the provider made it), then failed, cancelled or retried: it may have been charged,
    so its quote stays spent, and a new attempt of the same job counts once more."""
    run = state(["a"], budget="2.24")
    scheduler.dispatch(run, "a")
    scheduler.journaled(run, "a", JobState.SUBMITTING)
    scheduler.journaled(run, "a", JobState.QUEUED, created=True)
    scheduler.journaled(run, "a", end, created=True)
    scheduler.release(run, "a", end)
    assert run.budget.spent == COST and not run.budget.billed
    scheduler.requeue(run, "a")
    scheduler.dispatch(run, "a")
    assert run.budget.spent == 2 * COST
    scheduler.release(run, "a", JobState.PENDING)  # this attempt created nothing (a refused POST)
    assert run.budget.spent == COST
    scheduler.requeue(run, "a")
    assert scheduler.next_submission(run, 0.0) == Submit("a")  # 1.12 spent + 1.12 fits 2.24
    run.budget.start(Decimal("1.13"), {})
    assert scheduler.next_submission(run, 0.0) == Stop(StopReason.BUDGET)


def test_the_budget_starts_from_what_the_run_directory_spent_and_a_held_submission_can_be_given_back() -> (
    None
):
    """`start`: the journal's spend (superseded results, earlier attempts); a job left `submitting` by a
    crash holds its quote until the reconcile finds its generation (settled) or not (given back)."""
    run = state(["c"], budget="5", held=("a", "b"), capacity=3)
    run.budget.start(Decimal("4.48"), {"a": COST, "b": COST})
    assert scheduler.next_submission(run, 0.0) == Stop(StopReason.BUDGET)  # 4.48 + 1.12 > 5
    scheduler.journaled(run, "a", JobState.QUEUED, created=True)  # found at the provider
    scheduler.release(run, "b", JobState.PENDING)  # not found: never created
    assert run.budget.spent == Decimal("4.48") - COST and run.budget.billed == {}
    assert scheduler.next_submission(run, 0.0) == Submit("c")


@pytest.mark.parametrize(
    ("message", "attempts", "expected_state", "requeued", "stop"),
    [
        (
            "Getting model response error: 503 - Service temporarily unavailable",
            1,
            JobState.PENDING,
            True,
            None,
        ),
        (
            "Getting model response error: 503 - Service temporarily unavailable",
            3,
            JobState.FAILED,
            False,
            None,
        ),
        ("Insufficient credits", 1, JobState.PENDING, False, StopReason.NO_CREDITS),
        (
            "Getting model response error: 422 - Value error, Cannot provide both 'prompt' and 'multi_prompt'.",
            1,
            JobState.INVALID,
            False,
            None,
        ),
        (
            "Getting model response error: 403 Client Error: Forbidden for url: https://x/y.png",
            1,
            JobState.FAILED,
            False,
            None,
        ),
        (None, 2, JobState.PENDING, True, None),  # no message: transient, attempts left
    ],
)
def test_what_a_failed_generation_does_to_its_job(
    message: str | None, attempts: int, expected_state: JobState, requeued: bool, stop: StopReason | None
) -> None:
    """Retry while attempts remain (1 + retries), fail for good, reject, or stop the run for credits."""
    run = state(["a"], retries=2)
    scheduler.dispatch(run, "a")
    run.run_attempts["a"] = attempts
    outcome = scheduler.after_generation_failed(run, "a", message)
    assert (outcome.state, outcome.requeue, outcome.stop) == (expected_state, requeued, stop)
    scheduler.apply_failure(run, "a", outcome)
    assert list(run.pending) == (["a"] if requeued else [])
    assert run.retried == int(requeued) and run.stopping is stop and not run.slots.held


def test_leftovers_are_never_submitted_again() -> None:
    """A generation of a job the manifest no longer has is tracked, but a failure never resubmits it."""
    run = state([], held=("old",), leftovers=("old",))
    outcome = scheduler.after_generation_failed(run, "old", "Getting model response error: 503 - try again")
    assert outcome.state is JobState.FAILED and not outcome.requeue
    assert not scheduler.requeue(run, "old")
    assert not run.pending


@pytest.mark.parametrize(
    ("pending", "held", "stopping", "downloads_left", "done"),
    [
        ([], (), None, False, True),
        (["a"], (), None, False, False),
        (["a"], (), StopReason.BUDGET, False, True),  # stopping: what is pending waits for the next run
        ([], ("x",), StopReason.BUDGET, False, False),  # but what is in flight is still tracked
        ([], (), None, True, False),  # and what succeeded is still downloaded
    ],
)
def test_when_a_run_is_finished(
    pending: list[str], held: tuple[str, ...], stopping: StopReason | None, downloads_left: bool, done: bool
) -> None:
    """Finished: nothing more to submit (or stopping), nothing at the provider, nothing to download."""
    run = state(pending, held=held)
    run.stopping = stopping
    assert scheduler.finished(run, downloads_left=downloads_left) is done


def _imports(module: str) -> set[str]:
    """Every module `module` imports, following batchgen's own modules (statically, from their source)."""
    import ast
    import importlib.util

    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            found = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            )
            for imported in found:
                if imported not in seen:
                    seen.add(imported)
                    if imported.startswith("batchgen.") and importlib.util.find_spec(imported) is not None:
                        todo.append(imported)
    return seen


def test_the_scheduler_does_no_io() -> None:
    """The scheduler, and everything of batchgen it imports, imports neither aiohttp, aiofiles nor sqlite3."""
    imported = {name.split(".")[0] for name in _imports("batchgen.run.scheduler")}
    assert not imported & {"aiohttp", "aiofiles", "sqlite3", "asyncio", "socket"}


@pytest.mark.parametrize(
    ("costs", "limit", "billed", "admitted", "stopper"),
    [
        (["1.12"] * 6, "4", {}, 3, "j3"),  # 3.36 fits, 4.48 does not
        (["1.12"] * 6, "6.72", {}, 6, None),  # exactly the limit fits
        (["1.12"] * 3, "6", {"old": "4.48"}, 1, "j1"),  # what the run directory holds counts first
        (["0.50", "5.00", "0.50"], "4", {}, 1, "j1"),  # the run stops at the first that does not fit,
        # it does not skip to a cheaper one behind it
        ([], "1", {}, 0, None),
    ],
)
def test_the_budget_forecast_applies_the_runs_own_rule(
    costs: list[str], limit: str, billed: dict[str, str], admitted: int, stopper: str | None
) -> None:
    """`plan`'s line about the budget comes from the scheduler's decisions, job by job in plan order."""
    to_run = [(f"j{i}", Decimal(c)) for i, c in enumerate(costs)]
    held = sum((Decimal(v) for v in billed.values()), Decimal(0))
    forecast = scheduler.forecast_budget(Decimal(limit), to_run, held)
    assert (forecast.admitted, forecast.stopper, forecast.to_run) == (admitted, stopper, len(costs))
    assert forecast.committed == held
    assert forecast.spend == held + sum((c for _, c in to_run[:admitted]), Decimal(0))

    run = RunState(costs=dict(to_run), slots=Slots(len(costs) + 1), budget=scheduler.Budget(Decimal(limit)))
    for key, cost in billed.items():
        run.budget.bill(key, Decimal(cost))
    run.pending.extend(key for key, _ in to_run)
    sent = []
    while isinstance(decision := scheduler.next_submission(run, 0.0), Submit):
        scheduler.dispatch(run, decision.key)
        sent.append(decision.key)
    assert sent == [key for key, _ in to_run[:admitted]]  # what a run with these jobs submits
    assert (decision == Stop(StopReason.BUDGET)) == (stopper is not None)
