"""The provider's clock as seen from ours: how far apart they are, measured from the `Date` header of
its answers (pure: no I/O, no clock of its own; the caller passes the times).

A row's `enqueued_at` is on the provider's clock, and a journaled submission time on ours. A machine
whose clock runs ten minutes fast would otherwise decide that its own lost submission's row is "older
than the submission", not ours, and pay for the job again. So a submission is journaled with its time
on the provider's clock too, and where that is unknown, no row is ruled out by its time at all.
"""

from __future__ import annotations

import email.utils
import math
from datetime import UTC

__all__ = ["ServerClock", "parse_http_date"]


def parse_http_date(value: str | None) -> float | None:
    """An HTTP `Date` header (RFC 9110: `Sun, 06 Nov 1994 08:49:37 GMT`) as Unix seconds; None when it
    is missing or not a date."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one (`-0000`) is read as such
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class ServerClock:
    """The offset `provider time - our time`, narrowed by every answer.

    A `Date` header says the provider's time when it answered, to the whole second (truncated), and it
    answered between the moment we sent and the moment we read the answer, so each answer bounds the
    offset to an interval; the intervals of successive answers are intersected. One that does not meet
    the others (a clock was stepped) starts the estimate again from itself.
    """

    def __init__(self) -> None:
        self._low = -math.inf
        self._high = math.inf
        self._last_text: str | None = None  # the last header parsed (most answers repeat the second)
        self._last_value: float | None = None

    def observe(self, date_header: str | None, sent_at: float, received_at: float) -> None:
        """Take one answer into account: its `Date` header, and when (on our clock) it was asked and read."""
        if date_header != self._last_text:
            self._last_text, self._last_value = date_header, parse_http_date(date_header)
        server = self._last_value
        if server is None or received_at < sent_at:
            return
        low, high = server - received_at, server + 1.0 - sent_at
        if low > self._high or high < self._low:
            self._low, self._high = low, high
        else:
            self._low, self._high = max(self._low, low), min(self._high, high)

    @property
    def offset(self) -> float | None:
        """Seconds to add to our clock to read the provider's; None until an answer carried a date."""
        if not math.isfinite(self._low):
            return None
        return (self._low + self._high) / 2

    def to_server(self, local: float) -> float | None:
        """A time on our clock as the provider's clock read it then; None when the offset is unknown."""
        offset = self.offset
        return None if offset is None else local + offset
