"""The one retry loop, `retry.attempts()`: how it counts attempts, waits, lets errors through and gives up."""

from __future__ import annotations

import random

import pytest

from batchgen.config import RetryPolicy
from batchgen.errors import (
    ApiStatusError,
    ConnectFailed,
    NotFound,
    RateLimited,
    ResponseLost,
    Unauthenticated,
)
from batchgen.retry import Attempts, attempts, retryable

POLICY = RetryPolicy(request_attempts=3, initial_s=1.0, max_s=8.0, jitter=0.0)


class Sleeps:
    """The injected sleep: records each wait, never waits."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def _run(failures: list[Exception], tries: Attempts) -> tuple[list[int], str | None]:
    """Iterate `tries`, raising the next of `failures` in each attempt until they run out (then the
    attempt succeeds); the attempt numbers seen and what the loop returned (None: it ran out)."""
    numbers: list[int] = []
    async for attempt in tries:
        with attempt:
            numbers.append(attempt.number)
            if failures:
                raise failures.pop(0)
            return numbers, "done"
    return numbers, None


async def test_attempts_are_counted_and_backed_off_until_one_succeeds() -> None:
    """Two transient failures, then a success: attempts 1, 2, 3, with the policy's backoff (1 s, 2 s)
    between them, none after the success, and no real time spent (the sleep is injected)."""
    sleeps = Sleeps()
    tries = attempts(POLICY, limit=3, on=retryable, what="a call", sleep=sleeps, rng=random.Random(0))
    numbers, result = await _run([ResponseLost("cut"), ConnectFailed("refused")], tries)
    assert (numbers, result) == ([1, 2, 3], "done")
    assert sleeps.waits == [1.0, 2.0]
    assert tries.failures == 2


async def test_a_429_waits_its_retry_after_and_costs_no_attempt() -> None:
    """A 429 is waited out for its Retry-After (5 s when it gave none) and the next try keeps its
    number: three 429s and two cuts fit in a limit of 3."""
    sleeps = Sleeps()
    tries = attempts(POLICY, limit=3, on=lambda e: True, what="a call", sleep=sleeps)
    failures: list[Exception] = [
        RateLimited("GET", "/q", "slow down", 12.0),
        ResponseLost("cut"),
        RateLimited("GET", "/q", "slow down", None),
        RateLimited("GET", "/q", "slow down", 0.5),
        ResponseLost("cut"),
    ]
    numbers, result = await _run(failures, tries)
    assert (numbers, result) == ([1, 1, 2, 2, 2, 3], "done")
    assert sleeps.waits == [12.0, 1.0, 5.0, 0.5, 2.0]


async def test_what_on_says_decides_the_wait() -> None:
    """`on` may name the wait: `retryable` retries a 429 at once (the client's shared pause holds the
    next request), and a hook's number replaces the backoff while still costing an attempt."""
    sleeps = Sleeps()
    tries = attempts(POLICY, limit=3, on=retryable, what="a call", sleep=sleeps)
    numbers, _ = await _run([RateLimited("GET", "/q", "slow down", 30.0), ResponseLost("cut")], tries)
    assert (numbers, sleeps.waits) == ([1, 1, 2], [0.0, 1.0])
    sleeps = Sleeps()
    tries = attempts(POLICY, limit=3, on=lambda e: 0.25, what="a call", sleep=sleeps)
    numbers, _ = await _run([ResponseLost("cut"), ResponseLost("cut")], tries)
    assert (numbers, sleeps.waits) == ([1, 2, 3], [0.25, 0.25])


async def test_giving_up_after_the_limit_leaves_the_last_error() -> None:
    """Every attempt failing: `limit` attempts, a wait between each two but none after the last, then
    the loop ends and `error` is the last failure, for the caller to raise or report."""
    sleeps = Sleeps()
    last = ResponseLost("the third cut")
    tries = attempts(POLICY, limit=3, on=retryable, what="a call", sleep=sleeps)
    numbers, result = await _run([ResponseLost("cut"), ResponseLost("cut"), last, ResponseLost("x")], tries)
    assert (numbers, result) == ([1, 2, 3], None)
    assert sleeps.waits == [1.0, 2.0]
    assert tries.error is last


async def test_errors_not_retried_go_through_at_once() -> None:
    """An error `on` refuses, and an Unauthenticated whatever `on` says, leave the loop at once, with
    no wait; a loop that never failed has no `error`."""
    sleeps = Sleeps()
    tries = attempts(POLICY, limit=3, on=retryable, what="a call", sleep=sleeps)
    with pytest.raises(NotFound):
        await _run([NotFound(404, "GET", "/q", "gone")], tries)
    with pytest.raises(Unauthenticated):
        await _run(
            [Unauthenticated(401, "GET", "/q", "who")],
            attempts(POLICY, limit=3, on=lambda e: True, what="a call", sleep=sleeps),
        )
    assert sleeps.waits == []
    with pytest.raises(RuntimeError, match="no attempt of a call failed"):
        _ = tries.error


async def test_without_a_limit_it_tries_until_one_succeeds_and_restart_counts_afresh() -> None:
    """`limit=None` never gives up; `restart()` (a stream that was up) makes this attempt's failure
    the first again, so the backoff starts over instead of growing."""
    sleeps = Sleeps()
    tries = attempts(POLICY, limit=None, on=retryable, what="a stream", sleep=sleeps)
    numbers, result = await _run([ApiStatusError(503, "GET", "/e", "busy")] * 20, tries)
    assert (len(numbers), result) == (21, "done")
    assert sleeps.waits[:5] == [1.0, 2.0, 4.0, 8.0, 8.0]
    sleeps = Sleeps()
    tries = attempts(POLICY, limit=None, on=retryable, what="a stream", sleep=sleeps)
    seen = []
    async for attempt in tries:
        with attempt:
            seen.append(attempt.number)
            if len(seen) == 3:
                attempt.restart()  # connected, then lost
            if len(seen) < 5:
                raise ResponseLost("cut")
    assert (seen, sleeps.waits) == ([1, 2, 3, 2, 3], [1.0, 2.0, 1.0, 2.0])
