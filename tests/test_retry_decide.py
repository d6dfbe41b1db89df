"""The one retry decision: what an API error means, for idempotent calls and for the enqueue POST."""

from __future__ import annotations

import pytest

from batchgen.config import RetryPolicy
from batchgen.errors import (
    ApiError,
    ApiStatusError,
    ConnectFailed,
    InsufficientCredits,
    NotFound,
    RateLimited,
    ResponseLost,
    ResponseTimeout,
)
from batchgen.retry import Action, decide

POLICY = RetryPolicy(request_attempts=3, initial_s=1.0, max_s=8.0, jitter=0.0)


@pytest.mark.parametrize(
    ("error", "idempotent", "action"),
    [
        (ConnectFailed("refused"), False, Action.RETRY),  # nothing was sent: send it again
        (ResponseLost("cut"), False, Action.LOOK_FIRST),  # it may exist now: find it first
        (ResponseTimeout("slow"), False, Action.LOOK_FIRST),
        (ApiStatusError(503, "POST", "/q", "unavailable"), False, Action.LOOK_FIRST),
        (ApiStatusError(400, "POST", "/q", "bad"), False, Action.REJECT_JOB),
        (InsufficientCredits(402, "POST", "/q", "broke"), False, Action.STOP_RUN),
        (ResponseLost("cut"), True, Action.RETRY),  # an idempotent call is simply sent again
        (ApiStatusError(408, "GET", "/q", "timeout"), True, Action.RETRY),
        (NotFound(404, "GET", "/q", "gone"), True, Action.GIVE_UP),
    ],
)
def test_what_each_error_means(error: ApiError, idempotent: bool, action: Action) -> None:
    """Each error class maps to one action; only a POST that may have been acted on is looked for first."""
    assert decide(error, attempt=1, policy=POLICY, idempotent=idempotent) is action


def test_a_429_is_sent_again_whatever_the_attempt() -> None:
    """429 is the server asking to wait: sent again even past the last attempt (it costs none)."""
    for idempotent in (True, False):
        told = RateLimited("GET", "/q", "slow down", 12.0)
        assert decide(told, attempt=99, policy=POLICY, idempotent=idempotent) is Action.RETRY


def test_transient_errors_are_sent_again_until_the_last_attempt() -> None:
    """A transient failure of an idempotent call is sent again, then given up on the last attempt."""
    actions = [decide(ResponseLost("cut"), attempt=n, policy=POLICY, idempotent=True) for n in (1, 2, 3)]
    assert actions == [Action.RETRY, Action.RETRY, Action.GIVE_UP]
