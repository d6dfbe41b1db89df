"""The job state machine's table of legal transitions."""

import pytest

from batchgen.states import IN_FLIGHT, TRANSITIONS, IllegalTransition, JobState, check_transition


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
