"""Measurement marks for benchmarks: when each generation's completion was decided, announced, fetched.

Every mark is the ``time.monotonic()`` reading (seconds) of the first time it happened; later repeats
(a second SSE connection, a resumed download) do not move it. Monotonic readings are comparable with
each other and with other processes' ``time.monotonic()`` on the same machine, never with the
wall-clock timestamps of a ``Generation`` (which follow the injectable ``Clock``).

- ``terminal``: the engine moved the generation to ``succeeded`` or ``failed`` (and published the event).
- ``event_sent``: its ``media_generation_completed`` frame was written to an ``/api/events`` connection.
- ``first_download``: the first ``GET`` (not ``HEAD``) of its result path arrived, signed or not.

Marks only record; they change no behaviour.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Mark = Literal["terminal", "event_sent", "first_download"]


@dataclass(frozen=True)
class Marks:
    """The marks of one generation; None for what has not happened (yet)."""

    terminal: float | None = None
    event_sent: float | None = None
    first_download: float | None = None


class Timeline:
    """First-occurrence marks per generation id."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._marks: dict[str, Marks] = {}

    def mark(self, generation_id: str, name: Mark) -> None:
        """Record ``name`` for the generation now, unless it was recorded before."""
        marks = self._marks.get(generation_id, Marks())
        if getattr(marks, name) is None:
            self._marks[generation_id] = dataclasses.replace(marks, **{name: self._clock()})

    def get(self, generation_id: str) -> Marks:
        """The marks of one generation (all None if it has none)."""
        return self._marks.get(generation_id, Marks())

    def snapshot(self) -> dict[str, Marks]:
        """Every generation's marks, as an independent copy."""
        return dict(self._marks)
