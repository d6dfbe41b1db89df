"""What happens next in a run, decided without I/O: which job to submit, when to wait or stop, what a
failed generation does to its job, and when to look for completions the event stream missed.

The runner (`run/runner.py` and its parts) carries these decisions out. Nothing here awaits, sleeps, reads a
clock or touches the network, a file or the journal: time is passed in, so every rule is a table test.

Every limit on submitting is one kind of thing, a `Limit`, checked in one place (`next_submission`):
the account's provider slots, the shared 429 pause, and the budget (downloads: `Limits.downloads` workers).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from batchgen.retry import FailureKind, classify_generation_error
from batchgen.states import BILLED, JobState


class StopReason(StrEnum):
    NO_CREDITS = "no_credits"
    BUDGET = "budget"
    INTERRUPTED = "interrupted"
    API_UNAVAILABLE = "api_unavailable"
    CANCELLED = "cancelled"  # `batchgen cancel` asked the live run to stop and cancel
    FAILURES = "failures"  # the failure breaker tripped (`run.halt_after_failures`, `run.breaker`)


# -- decisions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Submit:
    key: str


@dataclass(frozen=True, slots=True)
class Wait:
    until: float | None  # None: until something changes (a slot is given back)
    why: str


@dataclass(frozen=True, slots=True)
class Stop:
    reason: StopReason


Decision = Submit | Wait | Stop


# -- limits ---------------------------------------------------------------------------------------


class Limit(Protocol):
    """Something that may hold back the next submission: `None` lets it through."""

    def blocks(self, key: str, cost: Decimal, now: float) -> Wait | Stop | None: ...


@dataclass(slots=True)
class Slots:
    """A capacity shared by the keys that hold a place (provider concurrency, downloads)."""

    capacity: int
    name: str = "slots"
    held: set[str] = field(default_factory=set)

    def blocks(self, key: str, cost: Decimal, now: float) -> Wait | Stop | None:
        return (
            Wait(None, f"all {self.capacity} {self.name} in use") if len(self.held) >= self.capacity else None
        )

    def take(self, key: str) -> None:
        self.held.add(key)

    def give(self, key: str) -> None:
        self.held.discard(key)


@dataclass(slots=True)
class Pause:
    """The one pause every API call of a run shares, set by a 429's Retry-After."""

    until: float = 0.0

    def extend(self, until: float) -> None:
        self.until = max(self.until, until)

    def blocks(self, key: str, cost: Decimal, now: float) -> Wait | Stop | None:
        return Wait(self.until, "the API asked us to wait (429)") if now < self.until else None


@dataclass(slots=True)
class Budget:
    """The run directory's spend against an optional cap. `start` seeds it with what the journal says
    was already spent (`journal.spend.Spend.total`: every generation ever created, superseded ones included);
    each dispatched job adds its quote and holds it (`billed`) until its attempt either creates a
    generation (`settle`: spent for good, whatever becomes of the generation) or surely creates none
    (`unbill`: given back). A job holding a slot keeps its hold whatever its state: one put back by a
    429 is still going to be sent."""

    limit: Decimal | None = None
    billed: dict[str, Decimal] = field(default_factory=dict)  # quotes held by attempts without a generation
    spent: Decimal = Decimal(0)

    def start(self, spent: Decimal, holding: Mapping[str, Decimal]) -> None:
        """What the run directory has spent so far, of which `holding` is held by attempts that may
        or may not have created a generation (journaled `submitting`)."""
        self.spent = spent
        self.billed = dict(holding)

    def bill(self, key: str, cost: Decimal) -> None:
        if key not in self.billed:
            self.billed[key] = cost
            self.spent += cost

    def unbill(self, key: str) -> None:
        self.spent -= self.billed.pop(key, Decimal(0))

    def settle(self, key: str) -> None:
        """The attempt of `key` created a generation: its quote stays spent (a new attempt bills again)."""
        self.billed.pop(key, None)

    def blocks(self, key: str, cost: Decimal, now: float) -> Wait | Stop | None:
        if self.limit is not None and key not in self.billed and self.spent + cost > self.limit:
            return Stop(StopReason.BUDGET)
        return None


# -- the run's state ------------------------------------------------------------------------------


@dataclass(slots=True)
class RunState:
    """Everything the decisions read: what is left, what holds a slot, what it costs, why we stop."""

    costs: Mapping[str, Decimal]
    slots: Slots
    budget: Budget = field(default_factory=Budget)
    pause: Pause = field(default_factory=Pause)
    retries: int = 2  # extra attempts of a transiently failed generation, per run
    pending: deque[str] = field(default_factory=deque)
    leftovers: set[str] = field(default_factory=set)  # journaled jobs the plan no longer has: never submitted
    withdrawn: set[str] = field(default_factory=set)  # jobs `batchgen cancel` took out of this run
    run_attempts: Counter[str] = field(default_factory=Counter)
    retried: int = 0
    stopping: StopReason | None = None
    stop_detail: str | None = None  # what happened, in words, when the reason alone would mislead

    @property
    def limits(self) -> tuple[Limit, ...]:
        return (self.pause, self.slots, self.budget)

    def cost(self, key: str) -> Decimal:
        return self.costs.get(key, Decimal(0))


def next_submission(state: RunState, now: float) -> Decision | None:
    """The next step of the submit loop; None when there is nothing more to submit."""
    if state.stopping is not None or not state.pending:
        return None
    key = state.pending[0]
    for limit in state.limits:
        held_back = limit.blocks(key, state.cost(key), now)
        if held_back is not None:
            return held_back
    return Submit(key)


def dispatch(state: RunState, key: str) -> None:
    """`key` is being submitted: it leaves the queue, holds a slot, and counts against the budget."""
    if not state.pending or state.pending[0] != key:
        raise RuntimeError(f"dispatch of {key!r}, which is not next")
    state.pending.popleft()
    state.slots.take(key)
    state.budget.bill(key, state.cost(key))
    state.run_attempts[key] += 1


def journaled(state: RunState, key: str, new: JobState, *, created: bool = False) -> None:
    """Keep the budget in step with a journaled state change; `created`: the job's attempt has a
    generation now (its spend is settled, whatever becomes of it)."""
    if created:
        state.budget.settle(key)
    elif new in BILLED:
        state.budget.bill(key, state.cost(key))
    elif key not in state.slots.held:
        state.budget.unbill(key)


def release(state: RunState, key: str, now_in: JobState) -> None:
    """`key` gives its slot back, now journaled as `now_in`; an attempt that created no generation
    gives its quote back too."""
    state.slots.give(key)
    if now_in not in BILLED:
        state.budget.unbill(key)


def requeue(state: RunState, key: str, *, front: bool = False) -> bool:
    """Put `key` back in the queue, unless the plan no longer has it or it was withdrawn (never
    resubmitted)."""
    if key in state.leftovers or key in state.withdrawn:
        return False
    if front:
        state.pending.appendleft(key)
    else:
        state.pending.append(key)
    return True


def withdraw(state: RunState, keys: set[str]) -> None:
    """`batchgen cancel`: these jobs leave the queue and are not submitted again by this run."""
    state.withdrawn |= keys
    state.pending = deque(key for key in state.pending if key not in keys)


def stop(state: RunState, reason: StopReason, detail: str | None = None) -> bool:
    """Stop submitting (the first reason, and its detail, stick); True when this call stopped it."""
    if state.stopping is not None:
        return False
    state.stopping, state.stop_detail = reason, detail
    return True


@dataclass(frozen=True, slots=True)
class FailureOutcome:
    """What a failed generation does to its job."""

    state: JobState
    detail: str
    error: str
    requeue: bool = False
    stop: StopReason | None = None


def after_generation_failed(state: RunState, key: str, message: str | None) -> FailureOutcome:
    """The provider says the generation of `key` failed: retry it, fail it, or stop the run."""
    verdict = classify_generation_error(message)
    if verdict.kind is FailureKind.NO_CREDITS:
        return FailureOutcome(
            JobState.PENDING, "no credits", verdict.message, requeue=False, stop=StopReason.NO_CREDITS
        )
    if verdict.kind is FailureKind.INVALID:
        return FailureOutcome(JobState.INVALID, "rejected by the model", verdict.message)
    if verdict.kind is FailureKind.REFERENCE_REFUSED:  # not transient: retrying pays nothing, fails the same
        return FailureOutcome(JobState.FAILED, "reference image refused", verdict.message)
    if key not in state.leftovers and state.run_attempts[key] <= state.retries:
        return FailureOutcome(JobState.PENDING, "retry", verdict.message, requeue=True)
    return FailureOutcome(JobState.FAILED, "attempts used up", verdict.message)


def apply_failure(state: RunState, key: str, outcome: FailureOutcome) -> None:
    """Carry a FailureOutcome out on the state (the caller journals `outcome.state` first)."""
    release(state, key, outcome.state)
    if outcome.requeue and requeue(state, key):
        state.retried += 1
    if outcome.stop is not None:
        stop(state, outcome.stop)


def finished(state: RunState, *, downloads_left: bool) -> bool:
    """Nothing more will happen: no submission to come, nothing at the provider, nothing to fetch."""
    no_more_submits = state.stopping is not None or not state.pending
    return no_more_submits and not state.slots.held and not downloads_left


# -- what a budget will let through (for `plan`) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class BudgetForecast:
    """How far a budget lets a run go, by the rule the run itself applies (`next_submission`)."""

    limit: Decimal
    committed: Decimal  # what the run directory has already spent (`journal.spend.Spend.total`)
    to_run: int  # jobs the run would submit
    admitted: int  # of those, how many the budget lets through before it stops the run
    spend: Decimal  # committed + the quotes of the admitted jobs
    stopper: str | None  # the key of the first job the budget stops (None: every job fits)


def forecast_budget(limit: Decimal, to_run: Sequence[tuple[str, Decimal]], spent: Decimal) -> BudgetForecast:
    """Submit `to_run` (key, quote) in order against `limit` with `spent` already spent, assuming every
    generation succeeds, with the scheduler's own state and decisions: `plan` and `run` agree."""
    state = RunState(costs=dict(to_run), slots=Slots(len(to_run) + 1), budget=Budget(limit))
    state.budget.start(spent, {})
    state.pending.extend(key for key, _ in to_run)
    admitted = 0
    while isinstance(decision := next_submission(state, 0.0), Submit):
        dispatch(state, decision.key)
        admitted += 1
    stopper = state.pending[0] if isinstance(decision, Stop) else None
    return BudgetForecast(limit, spent, len(to_run), admitted, state.budget.spent, stopper)
