"""The progress display: rate-limited, lazy about taking snapshots, the money always in sight."""

import io
import os
import time
from dataclasses import replace
from decimal import Decimal

import pytest
from tqdm import tqdm

from batchgen.cli import progress as progress_module
from batchgen.cli.progress import BAR_FORMAT, Progress, bar_parts, describe
from batchgen.run.runner import RunStats, StopReason


def stats(*, total: int = 10, spent: str = "3.36", budget: str | None = None, **counts: int) -> RunStats:
    return RunStats(
        counts=counts,
        total=total,
        spent_usd=Decimal(spent),
        retried=1,
        throttled_s=4.0,
        stream_connected=False,
        stopping=StopReason.BUDGET,
        started_at=time.time(),
        budget_usd=None if budget is None else Decimal(budget),
    )


def bar_text(stats: RunStats, *, ncols: int, elapsed_s: float) -> str:
    """The bar's line as tqdm draws it `ncols` wide (what a terminal of that width shows)."""
    desc, postfix = bar_parts(stats)
    return tqdm.format_meter(
        stats.counts.get("done", 0),
        stats.total,
        elapsed_s,
        ncols=ncols,
        prefix=desc,
        postfix=postfix,
        bar_format=BAR_FORMAT,
        unit="job",
    )


def test_describe_shows_counts_spend_throttling_and_stream_health() -> None:
    """One line carries everything an operator checks at 3 a.m.; the spend says it is the run
    directory's, and against which budget."""
    line = describe(stats(queued=2, processing=3, succeeded=1, failed=1, invalid=1))
    assert line == (
        "in flight 5 · downloading 1 · failed 2 · retried 1 · $3.36 spent (run directory) · throttled 4s"
        " · stream reconnecting · stopping (budget)"
    )
    assert describe(stats(budget="40")).split(" · ")[4] == "$3.36 spent (run directory; budget $40.00)"


@pytest.mark.parametrize(
    ("spent", "budget", "total"),
    [("3.36", "40", 9), ("1234.56", "2000", 1000), ("98765.43", "100000.50", 100000), ("0", None, 12)],
)
def test_the_bar_keeps_spend_and_budget_visible_at_80_columns(
    spent: str, budget: str | None, total: int
) -> None:
    """At 80 columns the bar line fits, and starts with the spend and the budget: a narrow
    terminal cuts the counts at the end, never the money."""
    state = stats(
        spent=spent, budget=budget, total=total, done=total // 2, queued=64, succeeded=4, failed=120
    )
    line = bar_text(state, ncols=80, elapsed_s=3725.0)
    assert len(line) <= 80
    money = f"${Decimal(spent):,.2f}" + (f"/${Decimal(budget):,.2f}".removesuffix(".00") if budget else "")
    assert line.startswith(money + " spent ")
    assert f"{total // 2}/{total} |" in line
    wide = bar_text(state, ncols=160, elapsed_s=3725.0)
    assert wide.endswith("run 64 dl 4 fail 120 retry 1 429 4s reconnecting stopping: budget")


def test_a_terminal_that_reports_0x0_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tty that says it is 0 columns wide (some CI runners) gets the plain lines, not a bar of nothing."""
    monkeypatch.setattr(progress_module.os, "get_terminal_size", lambda fd: os.terminal_size((0, 0)))

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

        def fileno(self) -> int:
            return 2

    out = Tty()
    shown = Progress(10, stream=out, interval_s=0)
    shown.update(lambda: stats(done=3))
    shown.close(lambda: stats(done=4))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all(line.startswith("[00:00:00] ") for line in lines)
    assert "\r" not in out.getvalue()
    monkeypatch.setattr(progress_module.os, "get_terminal_size", lambda fd: os.terminal_size((80, 24)))
    bar = Tty()
    Progress(10, stream=bar, interval_s=0).close(lambda: stats(done=4))
    assert "\r" in bar.getvalue() and "$3.36 spent 4/10 |" in bar.getvalue()


def test_plain_lines_carry_an_eta_from_this_runs_pace() -> None:
    """Jobs done before this run started do not count in the pace: 20 of 100 were done, then 10 more in
    60 s, so 70 left take 420 s."""
    now = [0.0]
    out = io.StringIO()
    shown = Progress(100, stream=out, interval_s=0, tty=False, clock=lambda: now[0])
    shown.update(lambda: stats(total=100, done=20))
    now[0] = 60.0
    shown.update(lambda: stats(total=100, done=30))
    shown.close(lambda: stats(total=100, done=100))
    first, second, last = out.getvalue().splitlines()
    assert " 20/100 done · eta ? · " in first
    assert " 30/100 done · eta 00:07:00 · " in second
    assert " 100/100 done · in flight" in last  # nothing left: no ETA


def test_describe_shows_files_delivered_of_those_to_deliver_when_delivering() -> None:
    """The progress line shows `delivered N/M` while delivering, and nothing about delivery otherwise."""
    line = describe(replace(stats(queued=1), delivered=(12, 18)))
    assert "· $3.36 spent (run directory) · delivered 12/18 · throttled 4s" in line
    assert "delivered" not in describe(stats(queued=1))


def test_plain_lines_are_rate_limited_and_snapshots_taken_only_when_shown() -> None:
    """Between intervals update() neither prints nor computes a snapshot; close() always prints."""
    now = [0.0]
    out = io.StringIO()
    taken = 0

    def snapshot() -> RunStats:
        nonlocal taken
        taken += 1
        return stats(done=taken)

    progress = Progress(10, stream=out, interval_s=10, tty=False, clock=lambda: now[0])
    for step in range(100):
        now[0] = step * 0.5  # 50 s in half-second steps: 5 lines due
        progress.update(snapshot)
    progress.close(snapshot)
    lines = out.getvalue().splitlines()
    assert taken == len(lines) == 6
    assert lines[-1].split("]")[1].startswith(" 6/10 done")
