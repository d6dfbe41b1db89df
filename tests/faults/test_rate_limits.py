"""Guarantee 4: a 429 pauses every API call of the run for its Retry-After, and the batch finishes.

What is counted: for every 429 the emulator answered at time t with `Retry-After: r`, the API
requests (routes under /api/ai/ and /api/events) that reached the emulator in [t + GRACE_S, t + r).
Requests arriving in [t, t + GRACE_S) are excluded: the runner may have started them before it read
the 429 (each of its tasks has at most one call in flight), and they can only arrive that late. Their
number is reported and bounded separately.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from batchgen.emulator import FaultConfig
from tests.faults.conftest import Harness, api_requests, assert_complete, write_manifest

JOBS = 60
GRACE_S = 0.1
PERIOD_S = 2.0
BURST_S = 0.5


async def test_429_storms_0_requests_during_a_pause_60_of_60_done(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """429 storms (0.5 s every 2 s, Retry-After = rest of the storm, rounded up): no API request
    reaches the emulator inside any pause, 60/60 done, 0 duplicates."""
    storms = FaultConfig(rate_limit_burst_seconds=BURST_S, rate_limit_burst_period_seconds=PERIOD_S)
    emu = await start_emulator(seed=4, time_scale=0.003, account_concurrency=16, faults=storms)
    manifest = write_manifest(tmp_path, count=JOBS)
    result = await harness.run(emu, manifest, "-j", "8")
    assert result.code == 0, result.stderr
    assert_complete(tmp_path / "out" / "e2e", emu, JOBS)

    log = api_requests(emu)
    limited = [r for r in log if r.status == 429]
    # 429s less than a storm's length apart belong to the same storm.
    storms_hit = sum(1 for i, r in enumerate(limited) if i == 0 or r.at - limited[i - 1].at > BURST_S)
    assert storms_hit >= 2
    # Each caller (-j 8 submitters, the stream, the reconcile loop, a URL refresh) is told at most once.
    assert len(limited) <= storms_hit * (8 + 3)
    inside, in_flight = [], []
    for r429 in limited:
        assert r429.answered_at is not None and r429.retry_after is not None
        start, end = r429.answered_at, r429.answered_at + float(r429.retry_after)
        for r in log:
            if start + GRACE_S <= r.at < end:
                inside.append((r.route, round(r.at - start, 3)))
            elif start < r.at < start + GRACE_S:
                in_flight.append(r.at - start)
    print(
        f"FIGURE 429: {len(limited)} x 429 in {storms_hit} storms; {len(inside)} requests inside a pause;"
        f" {len(in_flight)} in flight (latest {max(in_flight, default=0) * 1000:.0f} ms after its 429)"
    )
    assert inside == []


async def test_an_enqueue_answered_429_twelve_times_in_a_row_is_not_given_up_3_of_3_done(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """The first 12 POSTs all get 429 (Retry-After: 0): a 429 asks for a wait, it is not a failure,
    so no job is given up (the runner tries 8 times on real failures) and 3/3 end done."""
    emu = await start_emulator(
        faults=FaultConfig(rate_limit_retry_after_seconds=0, rate_limit_routes=("POST /api/ai/queue",))
    )
    posts = 0

    def limit_first_12_posts(event: str, detail: Any) -> None:
        nonlocal posts
        if event == "request" and detail.route == "POST /api/ai/queue":
            posts += 1  # arrival is logged before the fault dice roll, so this decides this request
            emu.set_faults(rate_limit_rate=1.0 if posts <= 12 else 0.0)

    emu.counters.listeners.append(limit_first_12_posts)
    manifest = write_manifest(tmp_path, count=3)
    result = await harness.run(emu, manifest, "-j", "1")
    assert result.code == 0, result.stderr
    assert emu.counters.faults["rate_limit"] == 12
    assert_complete(tmp_path / "out" / "e2e", emu, 3)
