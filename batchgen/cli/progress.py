"""Progress display from RunStats snapshots: a tqdm bar on a terminal, plain lines otherwise.

The spend shown is what the budget counts: the run directory's spend (`batchgen.journal.spend`: every
generation it ever made, superseded ones and earlier attempts included, at its billed cost where the
history has been read, else at its quote), plus the quote of each job being submitted. On the bar it
comes first, so a narrow terminal (80 columns) cuts the
counts at the end, never the money. A terminal that reports its size as 0x0 (some CI runners and
containers) gets plain lines, which carry an ETA from this run's own pace.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from tqdm import tqdm

from batchgen.commands import format_usd
from batchgen.states import JobState

if TYPE_CHECKING:
    from batchgen import RunStats

# The event stream reports only completions, so queued and processing are shown as one count.
_IN_FLIGHT = (JobState.SUBMITTING, JobState.QUEUED, JobState.PROCESSING)
_SHOWN = (
    ("in flight", "run", _IN_FLIGHT),
    ("downloading", "dl", (JobState.SUCCEEDED,)),
    ("failed", "fail", (JobState.FAILED, JobState.INVALID)),
)
BAR_FORMAT = "{desc}{n_fmt}/{total_fmt} |{bar}| eta {remaining}{postfix}"


def committed(stats: RunStats, *, short: bool = False) -> str:
    """The run directory's spend, against the budget when there is one."""
    spent = format_usd(stats.spent_usd)
    if short:
        budget = format_usd(stats.budget_usd).removesuffix(".00")
        return f"{spent}/{budget} spent" if stats.budget_usd else f"{spent} spent"
    budget = f"; budget {format_usd(stats.budget_usd)}" if stats.budget_usd else ""
    return f"{spent} spent (run directory{budget})"


def _extras(stats: RunStats, *, short: bool) -> list[str]:
    parts = []
    if stats.delivered is not None:
        parts.append(f"{'repo' if short else 'delivered'} {stats.delivered[0]}/{stats.delivered[1]}")
    if stats.throttled_s >= 0.5:
        parts.append(f"{'429' if short else 'throttled'} {stats.throttled_s:.0f}s")
    if not stats.stream_connected:
        parts.append("reconnecting" if short else "stream reconnecting")
    if stats.stopping is not None:
        parts.append(f"stopping: {stats.stopping}" if short else f"stopping ({stats.stopping})")
    return parts


def describe(stats: RunStats) -> str:
    """One line: counts per state, retries, the run directory's spend, throttling, stream health."""
    parts = [f"{label} {sum(stats.counts.get(s, 0) for s in states)}" for label, _, states in _SHOWN]
    parts.append(f"retried {stats.retried}")
    parts.append(committed(stats))
    return " · ".join(parts + _extras(stats, short=False))


def bar_parts(stats: RunStats) -> tuple[str, str]:
    """What the bar shows around its counts: the money first (`desc`), the rest after (`postfix`)."""
    counts = [f"{short} {sum(stats.counts.get(s, 0) for s in states)}" for _, short, states in _SHOWN]
    if stats.retried:
        counts.append(f"retry {stats.retried}")
    return committed(stats, short=True) + " ", " ".join(counts + _extras(stats, short=True))


def terminal_columns(stream: TextIO) -> int | None:
    """The width the terminal behind `stream` reports (None when it cannot be asked)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return None


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
        if self._tty and terminal_columns(self._stream) == 0:
            self._tty = False  # a terminal that says it is 0x0 would get a bar of nothing
        self._interval_s = 0.1 if self._tty else interval_s
        self._clock = clock
        self._last = float("-inf")
        self._pace: tuple[float, int] | None = None  # (when, done) at the first update: the ETA's base
        self._bar: tqdm[Any] | None = None
        if self._tty:
            self._bar = tqdm(
                total=total,
                file=self._stream,
                unit="job",
                dynamic_ncols=True,
                smoothing=0.05,
                bar_format=BAR_FORMAT,
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
            desc, postfix = bar_parts(stats)
            self._bar.n = done
            self._bar.set_description_str(desc, refresh=False)
            self._bar.set_postfix_str(postfix, refresh=True)
            return
        if self._pace is None:
            self._pace = (now, done)
        elapsed = time.time() - stats.started_at
        print(
            f"[{_clock_text(elapsed)}] {done}/{stats.total} done{self._eta(now, done, stats.total)} · "
            f"{describe(stats)}",
            file=self._stream,
            flush=True,
        )

    def _eta(self, now: float, done: int, total: int) -> str:
        """ETA from this run's pace (jobs done earlier are not counted in it)."""
        assert self._pace is not None
        since, done_then = self._pace
        if done >= total:
            return ""
        if done <= done_then or now <= since:
            return " · eta ?"
        rate = (done - done_then) / (now - since)
        return f" · eta {_clock_text((total - done) / rate)}"

    def close(self, snapshot: Callable[[], RunStats]) -> None:
        self.update(snapshot, force=True)
        if self._bar is not None:
            self._bar.close()


def _clock_text(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
