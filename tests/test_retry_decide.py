"""The one retry decision: what an API error means, for idempotent calls and for the enqueue POST."""

from __future__ import annotations

import random

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
    assert (
        decide(error, attempt=1, policy=POLICY, rng=random.Random(0), idempotent=idempotent).action is action
    )


def test_a_429_waits_its_retry_after_and_costs_no_attempt() -> None:
    """429 is the server asking to wait: its Retry-After (5 s when missing), never an attempt used up."""
    told = decide(
        RateLimited("GET", "/q", "slow down", 12.0),
        attempt=99,
        policy=POLICY,
        rng=random.Random(0),
        idempotent=True,
    )
    assert (told.action, told.delay_s, told.costs_attempt) == (Action.RETRY, 12.0, False)
    untold = decide(
        RateLimited("POST", "/q", "slow down", None),
        attempt=1,
        policy=POLICY,
        rng=random.Random(0),
        idempotent=False,
    )
    assert (untold.action, untold.delay_s) == (Action.RETRY, 5.0)


def test_transient_errors_back_off_and_give_up_after_the_attempts() -> None:
    """Capped exponential backoff per attempt, then give up on the last one."""
    delays = [
        decide(ResponseLost("cut"), attempt=n, policy=POLICY, rng=random.Random(0), idempotent=True)
        for n in (1, 2, 3)
    ]
    assert [d.action for d in delays] == [Action.RETRY, Action.RETRY, Action.GIVE_UP]
    assert [d.delay_s for d in delays[:2]] == [1.0, 2.0]
