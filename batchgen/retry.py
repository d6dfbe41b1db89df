"""The one retry decision and the one retry loop.

- `decide(error, attempt=..., policy=..., idempotent=...)` classifies an error of an API call: send it
  again (after the loop's wait), look for it at the provider before sending it again (a POST that may
  have been acted on), fail the job (the request itself is wrong), stop the run (no credits), or give up.
- `attempts(policy, limit=..., on=...)` is the loop every retry in batchgen iterates; `retryable` is
  its `on` for Oxen API calls.
- `classify_generation_error(message)` reads a failed generation's error text.
- `backoff` gives the waits between tries.

No I/O and no asyncio here (the pure scheduler imports this module): the loop sleeps through the
function it is given. stamina itself is not a dependency: each of its attempts costs one (a 429 must
not), its test mode is global rather than a sleep passed in, and it would bring tenacity for some 60
lines.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from batchgen.config import RetryPolicy
from batchgen.errors import (
    ApiError,
    ApiStatusError,
    ConnectFailed,
    InsufficientCredits,
    RateLimited,
    TransportError,
    Unauthenticated,
)

log = logging.getLogger(__name__)


class Action(StrEnum):
    RETRY = "retry"  # surely not acted on (or idempotent): send it again (a 429 costs no attempt)
    LOOK_FIRST = "look_first"  # a POST that may have been acted on: find it at the provider first
    REJECT_JOB = "reject_job"  # the request itself is refused: retrying cannot help
    STOP_RUN = "stop_run"  # the account cannot pay: stop submitting; the job waits for the next run
    GIVE_UP = "give_up"  # attempts used up (or not retryable): let the error through


def decide(error: ApiError, *, attempt: int, policy: RetryPolicy, idempotent: bool) -> Action:
    """What to do after `error` on try number `attempt` (from 1) of one API call (how long to wait
    first is the retry loop's: `attempts`)."""
    if isinstance(error, InsufficientCredits):
        return Action.STOP_RUN
    if isinstance(error, RateLimited):  # answered before anything was done: not acted on, no attempt used
        return Action.RETRY
    if not _transient(error):
        return Action.REJECT_JOB if not idempotent else Action.GIVE_UP
    if not idempotent and not isinstance(error, ConnectFailed):
        return Action.LOOK_FIRST  # lost answer, timeout, 5xx: it may exist now
    if attempt >= policy.request_attempts:
        return Action.GIVE_UP
    return Action.RETRY


def _transient(error: Exception) -> bool:
    """A failure that may pass: the connection failed, the server failed (5xx) or timed out (408)."""
    return isinstance(error, TransportError) or (
        isinstance(error, ApiStatusError) and (error.status >= 500 or error.status == 408)
    )


def retryable(error: Exception) -> bool | float:
    """`on` for loops of Oxen API calls: a transient failure is tried again after the backoff; a 429
    at once (no attempt used): the client's shared pause holds the next request for its Retry-After."""
    return 0.0 if isinstance(error, RateLimited) else _transient(error)


class Attempts:
    """The tries of one retry loop, in the shape of stamina's `retry_context`:

        async for attempt in attempts(policy, limit=..., on=..., what=...):
            with attempt:
                return await ...

    Each attempt is a context manager that records a failure `on` retries on (it returns True to
    wait the policy's backoff, or a number of seconds; False lets the error through, as it does any
    Unauthenticated). A 429 costs no attempt and is waited out for its Retry-After. The loop ends when
    an attempt ends without a recorded failure (leave it with return or break), or when `limit`
    failures used it up (None: never): then `error` is the last one, for the caller to report."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        limit: int | None,
        on: Callable[[Exception], bool | float],
        what: str,  # the work, named in the log line of each retry
        sleep: Callable[[float], Awaitable[None]],  # asyncio.sleep, passed in: this module stays pure
        rng: random.Random | None = None,
        extra: Mapping[str, object] | None = None,  # the log line's extra (a job's key)
    ) -> None:
        self.policy, self.limit, self.what, self.extra = policy, limit, what, extra
        self._on, self._sleep, self._rng = on, sleep, rng or random.Random()
        self.failures = 0  # attempts used up
        self.number = 0  # of the attempt under way, from 1 (after a 429 the next one keeps it)
        self._error: Exception | None = None
        self._wait: float | None = 0.0  # before the next attempt (None: there is none)

    @property
    def error(self) -> Exception:
        if self._error is None:
            raise RuntimeError(f"no attempt of {self.what} failed")
        return self._error

    def __aiter__(self) -> Attempts:
        return self

    async def __anext__(self) -> Attempts:
        if self._wait is None:
            raise StopAsyncIteration
        if self.number:
            of = f" of {self.limit}" if self.limit is not None else ""
            again = f"trying again in {self._wait:.2f} s (attempt {self.failures + 1}{of})"
            log.info("%s failed (%r); %s", self.what, self.error, again, extra=self.extra)
            await self._sleep(self._wait)
        self._wait, self.number = None, self.failures + 1
        return self

    def restart(self) -> None:
        """Count a failure of this attempt as the first: it got under way (a stream that was up)."""
        self.failures = 0

    def __enter__(self) -> Attempts:
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> bool:
        if not isinstance(error, Exception) or isinstance(error, Unauthenticated):
            return False  # succeeded (the loop ends), or not an error to retry: a wrong key stays wrong
        told = self._on(error)
        if told is False:
            return False
        self._error = error
        if isinstance(error, RateLimited):  # the server asked us to wait: that costs no attempt
            self._wait = error.wait_s if told is True else float(told)
            return True
        self.failures += 1
        if self.limit is None or self.failures < self.limit:
            self._wait = backoff(self.failures, self.policy, self._rng) if told is True else float(told)
        return True


attempts = Attempts  # named as the loop reads: `async for attempt in attempts(...)`


def backoff(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Seconds to wait before try number `attempt` + 1 (attempt counts from 1): capped exponential
    with a random share of `policy.jitter`, so many clients do not retry in lockstep."""
    base = min(policy.max_s, policy.initial_s * 2 ** max(0, attempt - 1))
    return float(base * (1 - policy.jitter) + base * policy.jitter * rng.random())


# -- failed generations ---------------------------------------------------------------------------


class FailureKind(StrEnum):
    TRANSIENT = "transient"  # may work if tried again
    INVALID = "invalid"  # the request itself is wrong: trying again pays nothing but fails the same
    NO_CREDITS = "no_credits"  # the account is empty: stop submitting, not a per-job problem
    REFERENCE_REFUSED = "reference_refused"  # a reference image answered 403: fail now, say why


# Substrings of the provider's documented model-validation messages (docs/api-contract.md §6.3, §8).
_INVALID_MARKERS = (
    "422",
    "value error",
    "field required",
    "is invalid",
    "exceeds maximum",
    "input should be",
    "unsupported_media_type",
)
# A reference image the model could not fetch is not the request's fault, and may be back later;
# but one that answered 403 is private or blocks robots: retrying pays nothing and fails the same.
_FORBIDDEN_MARKERS = ("403 client error", "forbidden for url")
REFERENCE_HINT = (
    "a reference image answered 403 Forbidden: is its repository private? Reference images "
    "must be publicly downloadable (make the repository public, or use --inline-assets)"
)


@dataclass(frozen=True, slots=True)
class FailureVerdict:
    kind: FailureKind
    message: str


def classify_generation_error(message: str | None) -> FailureVerdict:
    """What a failed generation's error text tells us about retrying it."""
    text = (message or "generation failed without a message").strip()
    lowered = text.lower()
    if "insufficient credits" in lowered:
        return FailureVerdict(FailureKind.NO_CREDITS, text)
    if any(marker in lowered for marker in _FORBIDDEN_MARKERS):
        return FailureVerdict(FailureKind.REFERENCE_REFUSED, f"{text} ({REFERENCE_HINT})")
    if any(marker in lowered for marker in _INVALID_MARKERS):
        return FailureVerdict(FailureKind.INVALID, text)
    return FailureVerdict(FailureKind.TRANSIENT, text)
