"""The job state machine's table of legal transitions."""

import pytest

from batchgen.states import (
    BILLED,
    IN_FLIGHT,
    NEEDS_DOWNLOAD,
    RESTARTABLE,
    TRANSITIONS,
    IllegalTransition,
    JobState,
    check_transition,
)


def test_every_state_can_reach_done() -> None:
    """From every non-final state there is a path to done (nothing can get stuck)."""
    graph: dict[JobState, set[JobState]] = {}
    for old, new in TRANSITIONS:
        graph.setdefault(old, set()).add(new)
    for start in set(JobState):
        seen, frontier = {start}, [start]
        while frontier:
            for nxt in graph.get(frontier.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert JobState.DONE in seen, start


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (JobState.PENDING, JobState.QUEUED),  # a POST must be journaled as submitting first
        (JobState.DONE, JobState.PENDING),  # a finished, paid result is never generated again
        (JobState.SUCCEEDED, JobState.PENDING),
        (JobState.QUEUED, JobState.SUBMITTING),
        (JobState.UNVERIFIED, JobState.PENDING),  # a paid result that did not verify is never paid again
        (JobState.UNVERIFIED, JobState.FAILED),
    ],
)
def test_dangerous_transitions_are_refused(old: JobState, new: JobState) -> None:
    """Transitions that would pay twice or skip the journal raise IllegalTransition."""
    with pytest.raises(IllegalTransition, match=f"{old} -> {new}"):
        check_transition(old, new)


def test_staying_in_a_state_is_allowed() -> None:
    """Rewriting a job's fields without a state change is not a transition."""
    check_transition(JobState.SUBMITTING, JobState.SUBMITTING)


def test_in_flight_states_are_those_that_may_exist_at_the_provider() -> None:
    """Submitting counts as in flight: its generation may exist even though we hold no id."""
    assert {JobState.SUBMITTING, JobState.QUEUED, JobState.PROCESSING} == IN_FLIGHT


def test_an_unverified_result_counts_as_paid_but_is_neither_done_nor_downloaded_nor_restarted() -> None:
    """Paid (its quote counts), and left alone by a run: only the user's accept or fetch-again moves it."""
    assert JobState.UNVERIFIED in BILLED
    assert JobState.UNVERIFIED not in NEEDS_DOWNLOAD | RESTARTABLE | IN_FLIGHT
    assert {new for old, new in TRANSITIONS if old is JobState.UNVERIFIED} == {
        JobState.DONE,
        JobState.SUCCEEDED,
        JobState.SUPERSEDED,
    }
