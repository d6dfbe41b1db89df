"""The one retry decision: what a failure means and what to do about it (pure: no sleeping, no I/O).

- `decide(error, attempt=..., policy=..., rng=..., idempotent=...)` classifies an error of an API call:
  retry after N seconds, look for it at the provider before sending it again (a POST that may have
  been acted on), fail the job (the request itself is wrong), stop the run (no credits), or give up.
- `classify_generation_error(message)` reads a failed generation's error text.
- `backoff` and `parse_retry_after` give the waits.

Callers sleep through what they are told; an idempotent call loops with `OxenClient.with_retries`.
"""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import UTC, datetime
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

DEFAULT_RETRY_AFTER_S = 5.0  # a 429 without a usable Retry-After


class Action(StrEnum):
    RETRY = "retry"  # surely not acted on (or idempotent): send it again after `delay_s`
    LOOK_FIRST = "look_first"  # a POST that may have been acted on: find it at the provider first
    REJECT_JOB = "reject_job"  # the request itself is refused: retrying cannot help
    STOP_RUN = "stop_run"  # the account cannot pay: stop submitting; the job waits for the next run
    FATAL = "fatal"  # the key is wrong: nothing can go on
    GIVE_UP = "give_up"  # attempts used up (or not retryable): let the error through


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    delay_s: float = 0.0
    costs_attempt: bool = True  # a 429 is the server asking us to wait: it costs no attempt


def decide(
    error: ApiError, *, attempt: int, policy: RetryPolicy, rng: random.Random, idempotent: bool
) -> Verdict:
    """What to do after `error` on try number `attempt` (from 1) of one API call."""
    if isinstance(error, Unauthenticated):
        return Verdict(Action.FATAL)
    if isinstance(error, InsufficientCredits):
        return Verdict(Action.STOP_RUN)
    if isinstance(error, RateLimited):  # answered before anything was done: not acted on, no attempt used
        wait = error.retry_after if error.retry_after is not None else DEFAULT_RETRY_AFTER_S
        return Verdict(Action.RETRY, wait, costs_attempt=False)
    transient = isinstance(error, TransportError) or (
        isinstance(error, ApiStatusError) and (error.status >= 500 or error.status == 408)
    )
    if not transient:
        return Verdict(Action.REJECT_JOB if not idempotent else Action.GIVE_UP)
    if not idempotent and not isinstance(error, ConnectFailed):
        return Verdict(Action.LOOK_FIRST)  # lost answer, timeout, 5xx: it may exist now
    if attempt >= policy.request_attempts:
        return Verdict(Action.GIVE_UP)
    return Verdict(Action.RETRY, backoff(attempt, policy, rng))


def backoff(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Seconds to wait before try number `attempt` + 1 (attempt counts from 1): capped exponential
    with a random share of `policy.jitter`, so many clients do not retry in lockstep."""
    base = min(policy.max_s, policy.initial_s * 2 ** max(0, attempt - 1))
    return float(base * (1 - policy.jitter) + base * policy.jitter * rng.random())


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


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
