"""Backoff, Retry-After parsing and what a failed generation's message means."""

import random
from datetime import UTC, datetime

import pytest

from batchgen.client.api import parse_retry_after
from batchgen.config import RetryPolicy
from batchgen.retry import FailureKind, backoff, classify_generation_error


def test_backoff_doubles_and_caps_without_jitter() -> None:
    """Without jitter the delay doubles per attempt up to max_s."""
    policy = RetryPolicy(initial_s=0.5, max_s=4.0, jitter=0.0)
    rng = random.Random(1)
    assert [backoff(n, policy, rng) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_backoff_jitter_stays_within_its_share() -> None:
    """With jitter 0.5 the delay lies between half and all of the base delay."""
    policy = RetryPolicy(initial_s=1.0, max_s=8.0, jitter=0.5)
    rng = random.Random(7)
    delays = [backoff(3, policy, rng) for _ in range(200)]
    assert min(delays) >= 2.0 and max(delays) <= 4.0
    assert len({round(d, 6) for d in delays}) > 100  # actually random


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("8", 8.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("Wed, 25 Nov 2026 12:00:10 GMT", 10.0),
        ("Wed, 25 Nov 2026 11:59:00 GMT", 0.0),
    ],
)
def test_retry_after_accepts_seconds_and_http_dates(header: str | None, expected: float | None) -> None:
    """Retry-After is delta-seconds or an HTTP-date; garbage means 'not given'."""
    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(header, now) == expected


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("Insufficient credits", FailureKind.NO_CREDITS),
        (
            "Getting model response error: 422 - Value error, Cannot provide both 'prompt' and 'multi_prompt'.",
            FailureKind.INVALID,
        ),
        ("Field required", FailureKind.INVALID),
        ("Total shot duration (16s) exceeds maximum allowed (15s).", FailureKind.INVALID),
        (
            "duration value '2' is invalid. Try using duration='5' instead, as duration support may vary "
            "by model and mode.",
            FailureKind.INVALID,
        ),
        ("403 Client Error: Forbidden for url: https://x/y.png", FailureKind.REFERENCE_REFUSED),
        ("Upstream provider timed out", FailureKind.TRANSIENT),
        (None, FailureKind.TRANSIENT),
    ],
)
def test_generation_errors_are_classified(message: str | None, kind: FailureKind) -> None:
    """Documented validation errors are not retried; credits stop the run; the rest is transient."""
    assert classify_generation_error(message).kind is kind
