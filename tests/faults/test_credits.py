"""Guarantee 7: when the account runs out of credits, submission stops, work already paid for is
downloaded, the run exits 1 with the waiting jobs journaled, and a rerun after a top-up finishes
without paying for anything twice."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import Harness, api_requests, assert_complete, journal_jobs, paid, write_manifest

JOBS = 40
PRICE = Decimal("1.12")  # kling-video-o3-pro-reference-to-video, 5 s at 0.224 USD/s


@pytest.mark.parametrize("how", ["402-at-enqueue", "failed-generations"])
async def test_credits_run_out_after_15_jobs_exit_1_then_topped_up_rerun_0_duplicates(
    start_emulator: Any, harness: Harness, tmp_path: Path, how: str
) -> None:
    """Credits for 15 of 40 jobs: run 1 stops submitting, downloads every paid result, exits 1 and
    journals the rest as pending; after a top-up the rerun ends 40/40 with 0 paid duplicates."""
    if how == "402-at-enqueue":  # the balance is short: enqueues beyond it are refused with 402
        emu = await start_emulator(seed=12, credits_usd=float(15 * PRICE) + 0.5)
    else:  # the balance runs out under queued work: rows that start later fail "Insufficient credits"
        emu = await start_emulator(seed=12, account_concurrency=4)
        enqueued = 0

        def exhaust_at_20th_enqueue(event: str, detail: Any) -> None:
            nonlocal enqueued
            if event != "enqueued":
                return
            enqueued += 1
            if enqueued == 20:
                emu.set_faults(credits_exhaust_after_usd=float(15 * PRICE))

        emu.counters.listeners.append(exhaust_at_20th_enqueue)
    manifest = write_manifest(tmp_path, count=JOBS)
    run_dir = tmp_path / "out" / "e2e"

    first = await harness.run(emu, manifest, "-j", "16")
    assert first.code == 1, first.stderr
    assert "credits" in first.stderr.lower()
    states = {key: row["state"] for key, row in journal_jobs(run_dir).items()}
    assert paid(emu) == 15
    assert list(states.values()).count("done") == paid(emu)  # all paid work was downloaded
    assert set(states.values()) == {"done", "pending"}  # nothing left in flight or half-done
    status = await harness.cli("status", str(run_dir), "--json")
    waiting = [json.loads(line) for line in status.stdout.splitlines()]
    assert sum(1 for job in waiting if job["state"] == "pending") == JOBS - paid(
        emu
    )  # the journal says who waits
    enqueues_after_402 = [r for r in api_requests(emu) if r.route == "POST /api/ai/queue" and r.status == 402]
    assert len(enqueues_after_402) <= 16  # submission stopped: at most one refusal per concurrency slot
    unpaid = sum(1 for g in emu.generations() if g.status == "failed")
    assert unpaid > 0 if how == "failed-generations" else unpaid == 0

    if how == "402-at-enqueue":
        emu.add_credits(100)
    else:
        emu.set_faults(credits_exhaust_after_usd=None)
    second = await harness.run(emu, manifest, "-j", "16")
    assert second.code == 0, second.stderr
    failed_attempts = sum(1 for g in emu.generations() if g.status == "failed")  # unpaid, retried
    assert_complete(run_dir, emu, JOBS, enqueued=JOBS + failed_attempts)  # 40 paid, once each
