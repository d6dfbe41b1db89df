"""Guarantee 5: 5xx answers and responses slower than the client's timeout cost time, never a
duplicate generation or a lost job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from batchgen.emulator import FaultConfig
from tests.faults.conftest import Harness, assert_complete, write_manifest

JOBS = 30
REQUEST_TIMEOUT_S = 1.0


async def test_20pct_5xx_on_every_endpoint_and_slow_answers_0_duplicates_30_of_30_done(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """20% of API requests get a 503, and every 5th POST stalls 1.5 s, past the 1 s client timeout,
    then is carried out all the same: 30/30 done, exactly 30 generations created."""
    faults = FaultConfig(server_error_rate=0.2, slow_response_seconds=1.5 * REQUEST_TIMEOUT_S)
    emu = await start_emulator(seed=8, time_scale=0.002, account_concurrency=16, faults=faults)
    posts = 0

    def stall_every_5th_post(event: str, detail: Any) -> None:
        nonlocal posts
        if event == "request":  # runs just before this request's own slow-response dice roll
            posts += detail.route == "POST /api/ai/queue"
            stall = detail.route == "POST /api/ai/queue" and posts % 5 == 0
            emu.set_faults(slow_response_rate=1.0 if stall else 0.0)

    emu.counters.listeners.append(stall_every_5th_post)
    manifest = write_manifest(tmp_path, count=JOBS)
    result = await harness.run(
        emu, manifest, "-j", "16", "--request-timeout", str(REQUEST_TIMEOUT_S), limit_s=90
    )
    assert result.code == 0, result.stderr
    assert_complete(tmp_path / "out" / "e2e", emu, JOBS)
    injected = emu.counters.faults
    assert injected["server_error"] >= 10 and injected["slow_response"] >= 4
    log = emu.counters.request_log or []
    routes_hit = {r.route for r in log if r.status and r.status >= 500}
    assert {"POST /api/ai/queue", "GET /api/ai/queue"} <= routes_hit
    # Some enqueues stalled past the client's timeout and created their generation all the same:
    # the runner must have found those by reconciling, not by sending them again.
    stalled = [
        r
        for r in log
        if r.route == "POST /api/ai/queue"
        and r.answered_at is not None
        and r.answered_at - r.at >= REQUEST_TIMEOUT_S
        and r.status == 200
    ]
    assert stalled
    print(
        f"FIGURE 5xx: {injected['server_error']} x 503, {injected['slow_response']} stalls"
        f" ({len(stalled)} enqueues carried out after the client gave up); "
        f"{emu.counters.generations_enqueued} generations for {JOBS} jobs"
    )
