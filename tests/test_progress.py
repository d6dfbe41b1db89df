"""The progress display: rate-limited, and lazy about taking snapshots."""

import io
import time
from dataclasses import replace
from decimal import Decimal

from batchgen.progress import Progress, describe
from batchgen.runner import RunStats, StopReason


def stats(**counts: int) -> RunStats:
    return RunStats(
        counts=counts,
        total=10,
        spent_usd=Decimal("3.36"),
        retried=1,
        throttled_s=4.0,
        stream_connected=False,
        stopping=StopReason.BUDGET,
        started_at=time.time(),
    )


def test_describe_shows_counts_spend_throttling_and_stream_health() -> None:
    """One line carries everything an operator checks at 3 a.m."""
    line = describe(stats(queued=2, processing=3, succeeded=1, failed=1, invalid=1))
    assert line == (
        "in flight 5 · downloading 1 · failed 2 · retried 1 · $3.36 · throttled 4s"
        " · stream reconnecting · stopping (budget)"
    )


def test_describe_shows_files_delivered_of_those_to_deliver_when_delivering() -> None:
    line = describe(replace(stats(queued=1), delivered=(12, 18)))
    assert "· $3.36 · delivered 12/18 · throttled 4s" in line
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
