"""The runner in-process against the emulator: stopping, budgets, polling fallback, auth failure."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchgen.client.api import OxenClient
from batchgen.config import Limits, RunOptions, Timeouts
from batchgen.emulator import Emulator, EmulatorConfig, FaultConfig, run_emulator
from batchgen.journal.spend import Spend, journal_spend
from batchgen.journal.store import Journal
from batchgen.manifest import load_manifest
from batchgen.planning import Plan, build_plan
from batchgen.registry import SnapshotCatalog
from batchgen.run.billing import read_billed_costs
from batchgen.run.runner import Runner, RunOutcome, RunStats, StopReason
from batchgen.states import IllegalTransition, JobState

MODEL = "kling-video-o3-pro-reference-to-video"


def make_plan(tmp_path: Path, count: int) -> Plan:
    manifest = {
        "version": 1,
        "name": "unit",
        "model": MODEL,
        "defaults": {"duration": 5},
        "jobs": [{"name": "clip", "prompt": "take {n}", "matrix": {"n": list(range(count))}}],
    }
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return build_plan(load_manifest(path), SnapshotCatalog())


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with run_emulator(EmulatorConfig(time_scale=0.0005, keepalive_seconds=0.5)) as emulator:
        yield emulator


def options(emu: Emulator, **overrides: Any) -> RunOptions:
    base: dict[str, Any] = {
        "api_base": emu.base_url,
        "limits": Limits(concurrency=4, downloads=2),
        "timeouts": Timeouts(request_s=5, stream_idle_s=2),
    }
    return RunOptions(**{**base, **overrides})


async def run(
    plan: Plan,
    run_dir: Path,
    emu: Emulator,
    opts: RunOptions,
    *,
    key: str | None = None,
    hook: Callable[[Runner], None] | None = None,
) -> tuple[RunOutcome, Journal]:
    run_dir.mkdir(exist_ok=True)
    journal = Journal.open(run_dir)
    async with OxenClient(opts.api_base, key or emu.api_key, timeouts=opts.timeouts) as client:
        progress = None if hook is None else (lambda stats: hook(runner))
        runner = Runner(plan, run_dir, journal, client, opts, progress=progress)
        return await runner.run(), journal


def enqueued(emu: Emulator) -> int:
    return int(emu.counters.snapshot()["generations_enqueued"])


async def test_stop_lets_in_flight_work_finish_and_a_rerun_does_the_rest(
    emu: Emulator, tmp_path: Path
) -> None:
    """After request_stop nothing new is sent; what was in flight is downloaded; a rerun adds only the rest."""
    plan = make_plan(tmp_path, 12)

    def stop_once_something_is_queued(runner: Runner) -> None:
        if runner.stopping is None and runner.stats().counts.get(JobState.QUEUED):
            runner.request_stop()

    outcome, journal = await run(
        plan, tmp_path / "run", emu, options(emu), hook=stop_once_something_is_queued
    )
    assert outcome.stop_reason is StopReason.INTERRUPTED
    sent = enqueued(emu)
    assert 1 <= sent <= 4  # never more than the concurrency limit was in flight
    assert outcome.counts.get("done") == sent  # everything sent was tracked and downloaded
    journal.close()
    outcome, _ = await run(plan, tmp_path / "run", emu, options(emu))
    assert outcome.counts == {"done": 12}
    assert enqueued(emu) == 12


async def test_budget_stops_before_a_job_would_exceed_it(emu: Emulator, tmp_path: Path) -> None:
    """Each job is quoted $1.12; with a $5 budget exactly 4 are submitted and the run says why it stopped."""
    plan = make_plan(tmp_path, 10)
    outcome, _ = await run(plan, tmp_path / "run", emu, options(emu, budget_usd=Decimal(5)))
    assert outcome.stop_reason is StopReason.BUDGET
    assert enqueued(emu) == 4
    assert outcome.counts == {"done": 4, "pending": 6}


async def test_a_generation_that_failed_counts_against_the_budget_until_the_history_says_it_was_free(
    tmp_path: Path,
) -> None:
    """Every generation fails transiently and is retried: each may have been charged, so each counts
    ($1.12) and a $5 budget stops after 4 generations, not 30; once the history is read (failed rows
    with no cost), they count $0 and the spend says so."""
    async with run_emulator(
        EmulatorConfig(time_scale=0.0005, faults=FaultConfig(generation_failure_rate=1.0))
    ) as emu:
        plan = make_plan(tmp_path, 10)
        outcome, journal = await run(plan, tmp_path / "run", emu, options(emu, budget_usd=Decimal(5)))
        assert outcome.stop_reason is StopReason.BUDGET
        assert enqueued(emu) == 4 and outcome.spent_usd == Decimal("4.480")
        assert journal_spend(journal) == Spend(
            total=Decimal("4.480"), quoted=Decimal("4.480"), outside_plan=Decimal(0), generations=4
        )
        async with OxenClient(emu.base_url, emu.api_key) as client:
            assert await read_billed_costs(client, journal) == 4
        assert journal_spend(journal).total == 0 and journal_spend(journal).billed_generations == 4


async def test_without_an_event_stream_jobs_are_tracked_by_polling(tmp_path: Path) -> None:
    """/api/events always fails: the runner falls back to polling and still finishes every job."""
    faults = FaultConfig(server_error_rate=1.0, server_error_routes=("GET /api/events",))
    async with run_emulator(EmulatorConfig(time_scale=0.0005, faults=faults)) as emu:
        plan = make_plan(tmp_path, 6)
        opts = options(emu, timeouts=Timeouts(request_s=5, stream_idle_s=0.3), poll_interval_s=0.1)
        outcome, _ = await run(plan, tmp_path / "run", emu, opts)
        assert outcome.counts == {"done": 6}
        assert emu.counters.snapshot()["requests"].get("GET /api/events", 0) >= 1


async def test_a_wrong_key_stops_the_run_before_anything_is_enqueued(emu: Emulator, tmp_path: Path) -> None:
    """A 401 is fatal at once: a clear message, no enqueue, every job still pending."""
    plan = make_plan(tmp_path, 3)
    outcome, _ = await run(plan, tmp_path / "run", emu, options(emu), key="wrong-key")
    assert outcome.fatal is not None and "401" in outcome.fatal and "OXEN_API_KEY" in outcome.fatal
    assert "wrong-key" not in outcome.fatal
    assert enqueued(emu) == 0
    assert outcome.counts == {"pending": 3}


async def test_a_completed_run_makes_no_request(emu: Emulator, tmp_path: Path) -> None:
    """Everything done and on disk: a second run sends nothing at all, not even the event stream."""
    plan = make_plan(tmp_path, 3)
    first, journal = await run(plan, tmp_path / "run", emu, options(emu))
    journal.close()
    assert first.counts == {"done": 3}
    second, _ = await run(plan, tmp_path / "run", emu, options(emu))
    assert second.counts == {"done": 3}
    assert second.requests_sent == 0


async def test_a_deleted_video_is_fetched_again_without_paying_again(emu: Emulator, tmp_path: Path) -> None:
    """A finished file that went missing is downloaded again from the same generation, not regenerated."""
    plan = make_plan(tmp_path, 2)
    _, journal = await run(plan, tmp_path / "run", emu, options(emu))
    journal.close()
    victim = next((tmp_path / "run" / "videos").rglob("*.mp4"))
    victim.unlink()
    outcome, _ = await run(plan, tmp_path / "run", emu, options(emu))
    assert outcome.counts == {"done": 2}
    assert victim.is_file()
    assert enqueued(emu) == 2


async def test_a_missing_upload_repository_is_refused_before_anything_is_enqueued(
    emu: Emulator, tmp_path: Path
) -> None:
    """The upload repository does not exist: the images are placed before any submission, so the run
    is refused with how to create it and nothing is enqueued (not one failed job per image later)."""
    from batchgen.config import UploadTarget
    from batchgen.errors import UsageError

    (tmp_path / "ref.png").write_bytes((Path(__file__).parents[1] / "jobs" / "refs" / "mug.png").read_bytes())
    manifest = {
        "version": 1,
        "name": "unit",
        "model": MODEL,
        "assets": {"mug": "ref.png"},
        "jobs": [
            {"name": "with-image", "prompt": "@Image1 on a desk", "input_image": ["{asset:mug}"]},
            {"name": "text-only", "prompt": "a desk at dawn"},
        ],
    }
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(manifest))
    plan = build_plan(load_manifest(path), SnapshotCatalog())
    opts = options(emu, upload=UploadTarget(namespace="nobody", repo="missing"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    async with OxenClient(opts.api_base, emu.api_key, timeouts=opts.timeouts) as client:
        runner = Runner(plan, run_dir, Journal.open(run_dir), client, opts)
        with pytest.raises(UsageError, match=r"nobody/missing .* does not exist"):
            await runner.prepare_assets()
    assert enqueued(emu) == 0


async def test_a_429_at_enqueue_is_journaled_as_not_created_before_waiting(tmp_path: Path) -> None:
    """Every 429 to a POST moves its job back to pending in the journal at once, so a crash during the
    Retry-After wait leaves nothing to reconcile; the POST is sent again only after the pause."""
    faults = FaultConfig(rate_limit_burst_seconds=1.0, rate_limit_routes=("POST /api/ai/queue",))
    async with run_emulator(EmulatorConfig(time_scale=0.0005, keepalive_seconds=0.5, faults=faults)) as emu:
        emu.counters.request_log = []
        plan = make_plan(tmp_path, 4)
        outcome, journal = await run(plan, tmp_path / "run", emu, options(emu))
        assert outcome.counts == {"done": 4}
        limited = [r for r in emu.counters.request_log if r.route == "POST /api/ai/queue" and r.status == 429]
        assert limited  # the storm really hit the POSTs
        import sqlite3

        with sqlite3.connect(journal.path) as conn:
            rows = conn.execute(
                "SELECT job_key, from_state, to_state, detail FROM transitions ORDER BY seq"
            ).fetchall()
        not_created = [r for r in rows if r[1:] == ("submitting", "pending", "not created: RateLimited")]
        assert len(not_created) == len(limited)
        for key, *_ in not_created:  # after each, the job was sent again and succeeded exactly once
            assert [r[2] for r in rows if r[0] == key][-1] == "done"
        assert enqueued(emu) == 4


async def test_paid_generations_of_jobs_edited_out_of_the_manifest_are_still_downloaded(
    emu: Emulator, tmp_path: Path
) -> None:
    """Hard stop with jobs in flight, then the manifest changes: the old generations are downloaded, not resent."""
    import asyncio
    import contextlib

    run_dir = tmp_path / "run"
    first = make_plan(tmp_path, 4)
    opts = options(emu)
    run_dir.mkdir()
    journal = Journal.open(run_dir)
    async with OxenClient(opts.api_base, emu.api_key, timeouts=opts.timeouts) as client:

        def cancel_once_all_are_queued(stats: Callable[[], RunStats]) -> None:
            if stats().counts.get(JobState.QUEUED) == 4:
                task.cancel()

        runner = Runner(first, run_dir, journal, client, opts, progress=cancel_once_all_are_queued)
        task = asyncio.create_task(runner.run())
        with contextlib.suppress(asyncio.CancelledError):
            await task
    journal.close()
    assert enqueued(emu) == 4

    manifest = {
        "version": 1,
        "name": "unit",
        "model": MODEL,
        "defaults": {"duration": 5},
        "jobs": [{"name": "clip", "prompt": "new take {n}", "matrix": {"n": [0, 1]}}],
    }
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(manifest))
    second = build_plan(load_manifest(tmp_path / "m.yaml"), SnapshotCatalog())
    outcome, journal = await run(second, run_dir, emu, opts)
    assert outcome.counts == {"done": 2}
    assert outcome.leftovers == {"done": 4}  # left over from the first version, downloaded
    assert enqueued(emu) == 6  # the 4 old ones were not sent again
    assert len(list((run_dir / "videos").rglob("*.mp4"))) == 6


async def test_a_generation_the_api_does_not_know_fails_the_job_instead_of_hanging(
    emu: Emulator, tmp_path: Path
) -> None:
    """A journaled generation id the provider answers 404 for (another key or API base): invalid, said why."""
    plan = make_plan(tmp_path, 1)
    key = plan.jobs[0].key
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    journal = Journal.open(run_dir)
    journal.add_jobs([(key, 0, "clip", MODEL, plan.jobs[0].output_path)])
    journal.transition(key, JobState.SUBMITTING, sent_request="{}", submitted_at=0.0)
    journal.claim_generation(key, "7cf9b23a-1234-5678-9abc-def012345678", 1, JobState.QUEUED)
    journal.close()
    outcome, journal = await run(plan, run_dir, emu, options(emu))
    assert outcome.counts == {"invalid": 1}
    error = journal.get(key).error
    assert error is not None and "does not know generation 7cf9b23a" in error
    assert enqueued(emu) == 0


async def test_a_missing_sidecar_is_written_again_from_the_journal(emu: Emulator, tmp_path: Path) -> None:
    """Sidecars land in batches after their results: one lost (a crash, a hand) is rewritten on the next
    run from the journal, sending nothing."""
    import json

    plan = make_plan(tmp_path, 2)
    _, journal = await run(plan, tmp_path / "run", emu, options(emu))
    journal.close()
    sidecar = next((tmp_path / "run" / "videos").rglob("*.json"))
    before = json.loads(sidecar.read_text())
    sidecar.unlink()
    outcome, _ = await run(plan, tmp_path / "run", emu, options(emu))
    assert outcome.counts == {"done": 2} and outcome.requests_sent == 0
    after = json.loads(sidecar.read_text())
    assert {k: after[k] for k in ("job_key", "generation_id", "sha256", "size", "request")} == {
        k: before[k] for k in ("job_key", "generation_id", "sha256", "size", "request")
    }


async def test_generations_of_an_earlier_sandbox_session_are_submitted_again_not_failed(
    emu: Emulator, tmp_path: Path
) -> None:
    """The sandbox starts a new emulator each session: what an earlier one left queued, or finished but
    not downloaded, exists nowhere now. Nothing was paid, so those jobs run again instead of failing
    as unknown; so does one whose file was deleted since."""
    plan = make_plan(tmp_path, 4)
    queued, finished, deleted, _never_sent = (job.key for job in plan.jobs)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    journal = Journal.open(run_dir)
    journal.add_jobs((j.key, j.index, j.name, j.model, j.output_path) for j in plan.jobs)
    for number, key in enumerate((queued, finished, deleted)):
        journal.transition(key, JobState.SUBMITTING, sent_request="{}", submitted_at=0.0, api="sandbox")
        journal.claim_generation(key, f"0ld5e55-{number}", 1, JobState.QUEUED)
    journal.transition(finished, JobState.SUCCEEDED)
    journal.transition(deleted, JobState.SUCCEEDED)
    journal.transition(deleted, JobState.DONE, sha256="0" * 64, size=1)  # its file is not there
    journal.close()
    first, journal = await run(make_plan(tmp_path, 4), run_dir, emu, options(emu, sandbox=True))
    journal.close()
    assert first.counts == {"done": 4}
    assert enqueued(emu) == 4  # the three forgotten ones, and the one never sent


async def test_outside_the_sandbox_a_finished_generation_is_never_submitted_again(tmp_path: Path) -> None:
    """The sandbox's exception is the journal's, per generation: a result a real API made stays paid."""
    plan = make_plan(tmp_path, 1)
    key = plan.jobs[0].key
    journal = Journal.open(tmp_path)
    journal.add_jobs([(key, 0, "clip", MODEL, plan.jobs[0].output_path)])
    journal.transition(key, JobState.SUBMITTING, api="https://hub.oxen.ai")
    journal.claim_generation(key, "gen-1", 1, JobState.QUEUED)
    journal.transition(key, JobState.SUCCEEDED)
    with pytest.raises(IllegalTransition):
        journal.transition(key, JobState.PENDING)
    journal.transition(key, JobState.SUCCEEDED, api="sandbox")
    assert journal.transition(key, JobState.PENDING).state is JobState.PENDING
    journal.close()
