"""Progress display from RunStats snapshots: a tqdm bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from tqdm import tqdm

from batchgen.runner import RunStats
from batchgen.states import JobState

# The event stream reports only completions, so queued and processing are shown as one count.
_SHOWN = (
    ("in flight", (JobState.SUBMITTING, JobState.QUEUED, JobState.PROCESSING)),
    ("downloading", (JobState.SUCCEEDED,)),
    ("failed", (JobState.FAILED, JobState.INVALID)),
)


def describe(stats: RunStats) -> str:
    """One line: counts per state, retries, spend, throttling, stream health."""
    parts = [f"{label} {sum(stats.counts.get(s, 0) for s in states)}" for label, states in _SHOWN]
    parts.append(f"retried {stats.retried}")
    parts.append(f"${stats.spent_usd:.2f}")
    if stats.delivered is not None:
        parts.append(f"delivered {stats.delivered[0]}/{stats.delivered[1]}")
    if stats.throttled_s >= 0.5:
        parts.append(f"throttled {stats.throttled_s:.0f}s")
    if not stats.stream_connected:
        parts.append("stream reconnecting")
    if stats.stopping is not None:
        parts.append(f"stopping ({stats.stopping})")
    return " · ".join(parts)


class Progress:
    """Shows a run's progress; call `update` as often as you like, it rate-limits itself."""

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        interval_s: float = 10.0,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._interval_s = 0.1 if self._tty else interval_s
        self._clock = clock
        self._last = float("-inf")
        self._bar: tqdm[Any] | None = None
        if self._tty:
            self._bar = tqdm(
                total=total, file=self._stream, unit="job", dynamic_ncols=True, desc="done", smoothing=0.05
            )

    def update(self, snapshot: Callable[[], RunStats], *, force: bool = False) -> None:
        """Show `snapshot()` if it is time to; taking the snapshot is skipped otherwise."""
        now = self._clock()
        if not force and now - self._last < self._interval_s:
            return
        self._last = now
        stats = snapshot()
        done = stats.counts.get(JobState.DONE, 0)
        if self._bar is not None:
            self._bar.n = done
            self._bar.set_postfix_str(describe(stats), refresh=True)
            return
        elapsed = time.time() - stats.started_at
        print(
            f"[{_clock_text(elapsed)}] {done}/{stats.total} done · {describe(stats)}",
            file=self._stream,
            flush=True,
        )

    def close(self, snapshot: Callable[[], RunStats]) -> None:
        self.update(snapshot, force=True)
        if self._bar is not None:
            self._bar.close()


def _clock_text(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
