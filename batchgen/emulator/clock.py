"""Wall-clock time, injectable so tests can expire URLs without sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Unix time in seconds."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()


class OffsetClock:
    """The system clock read `offset` seconds ahead (negative: behind): a server whose clock differs
    from its client's, which is the same, seen from the client, as a client clock that is wrong."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def time(self) -> float:
        return time.time() + self.offset


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_775_091_431.0) -> None:
        self._now = start

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"ManualClock.advance: seconds must be >= 0, got {seconds!r}")
        self._now += seconds
