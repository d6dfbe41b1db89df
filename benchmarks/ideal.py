"""The ideal schedule a batch runner is judged against: plan order, a fixed number of slots, and the
pauses the provider forces on it. Pure functions, no I/O (unit-tested in tests/test_bench_ideal.py).

The ideal client submits the jobs in plan order; each job starts the moment a slot is free (the
earliest-free slot) and occupies it for exactly its render time. A 429 storm from `start` to `end`
answers every submission made inside it with `Retry-After: max(1, ceil(end - t))` (what the
emulator sends: the seconds left in the storm, rounded up), and the ideal client sends again
exactly that much later. No start-up, no network, no bookkeeping: the makespan of this schedule is
the least any client could achieve with the same render times and the same forced pauses.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Storm:
    """A 429 storm from `start` (inclusive) to `end` (exclusive), in the schedule's seconds."""

    start: float
    end: float

    def retry_after(self, t: float) -> int | None:
        """The Retry-After a submission at `t` gets, or None outside the storm."""
        if not self.start <= t < self.end:
            return None
        return max(1, math.ceil(self.end - t))


def earliest_start(t: float, storms: Sequence[Storm]) -> float:
    """When a submission first tried at `t` gets through, waiting out every Retry-After it is given."""
    while True:
        wait = next((w for storm in storms if (w := storm.retry_after(t)) is not None), None)
        if wait is None:
            return t
        t += wait


def ideal_schedule(
    renders: Sequence[float], slots: int, storms: Sequence[Storm] = ()
) -> list[tuple[float, float]]:
    """(start, finish) of each job, in plan order, on `slots` slots from time 0."""
    if slots < 1:
        raise ValueError(f"slots must be at least 1, got {slots}")
    if any(render < 0 for render in renders):
        raise ValueError("render times must not be negative")
    free = [0.0] * slots  # when each slot is next free (a heap)
    schedule = []
    for render in renders:
        start = earliest_start(heapq.heappop(free), storms)
        heapq.heappush(free, start + render)
        schedule.append((start, start + render))
    return schedule


def ideal_makespan(renders: Sequence[float], slots: int, storms: Sequence[Storm] = ()) -> float:
    """The last finish of the ideal schedule (0 for no jobs)."""
    return max((finish for _, finish in ideal_schedule(renders, slots, storms)), default=0.0)


def jobs_to_fill(renders: Sequence[float], slots: int, seconds: float) -> int:
    """The fewest leading jobs of `renders` whose ideal makespan reaches `seconds` (all if none do)."""
    free = [0.0] * slots
    for count, render in enumerate(renders, 1):
        start = heapq.heappop(free)
        heapq.heappush(free, start + render)
        if max(free) >= seconds:
            return count
    return len(renders)
