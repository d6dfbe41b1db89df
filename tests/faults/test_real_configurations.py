"""Guarantees 1-2 in the configurations teams use: an org-billed night (target_namespace) on an account
with thousands of older rows, a lean list that does not list everything, a service that echoes its
defaults, an event stream that never announces org-billed completions, cut POST answers and kill -9."""

from __future__ import annotations

import asyncio
import hashlib
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchgen.emulator import Emulator, FaultConfig
from tests.faults.conftest import Harness, journal_jobs, replica_manifest, results, write_manifest

ORG = "acme-org"
JOBS = 60
OLDER_ROWS = 2500


def org_billed(manifest: Path) -> Path:
    data = yaml.safe_load(manifest.read_text())
    data["defaults"]["target_namespace"] = ORG
    manifest.write_text(yaml.safe_dump(data))
    return manifest


def seed_last_weeks_night(emu: Emulator, manifest: Path) -> set[str]:
    """The same campaign ran last week from another machine: identical requests, in the org's history."""
    data = yaml.safe_load(manifest.read_text())
    job = data["jobs"][0]
    body = {**data["defaults"], "model": data["model"], "prompt": job["prompt"].replace("{n}", "0")}
    if "matrix" in job:  # one old row per distinct request of this manifest, repeated
        bodies = [{**body, "prompt": job["prompt"].replace("{n}", str(n))} for n in job["matrix"]["n"]]
    else:
        bodies = [body]
    seeded = set()
    per_body = max(1, OLDER_ROWS // len(bodies))
    for old in bodies:
        seeded |= {
            g.generation_id for g in emu.seed_history(per_body, old, namespace=ORG, age_seconds=7 * 86400)
        }
    return seeded


def kill_after(emu: Emulator, count: int) -> Any:
    """SIGKILL the CLI once `count` generations were created (inside the enqueue handler, before its answer)."""
    created = asyncio.Event()
    emu.counters.listeners.append(
        lambda event, _: (
            created.set() if event == "enqueued" and emu.counters.generations_enqueued >= count else None
        )
    )

    async def kill(proc: asyncio.subprocess.Process) -> None:
        await created.wait()
        proc.send_signal(signal.SIGKILL)

    return kill


def assert_paid_once(run_dir: Path, emu: Emulator, jobs: int, seeded: set[str]) -> None:
    """Every job done from its own new generation, each file's bytes equal to the emulator's result,
    and exactly `jobs` new generations created: 0 paid twice, none of last week's rows adopted."""
    rows = results(run_dir)
    assert [r["state"] for r in rows] == ["done"] * jobs
    ids = [r["generation_id"] for r in rows]
    assert len(set(ids)) == jobs and not set(ids) & seeded
    for row in rows:
        digest = hashlib.sha256((run_dir / row["output_path"]).read_bytes()).hexdigest()
        assert digest == emu.result_sha256(row["generation_id"])
    new = [g for g in emu.generations() if g.generation_id not in seeded]
    assert emu.counters.generations_enqueued == len(new) == jobs
    assert all(g.namespace == ORG for g in new)
    assert not [p for p in run_dir.rglob("*") if p.name.endswith((".part", ".tmp"))]


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["distinct", "replicas"])
async def test_org_billed_night_with_cut_posts_older_rows_and_kill_9_pays_once(
    start_emulator: Any, harness: Harness, tmp_path: Path, shape: str
) -> None:
    """Org billing, 2,500 identical older rows paged oldest first, a lean list capped at 5 rows, echoed
    defaults, no events for org rows, 15% cut POST answers and a kill -9 inside an enqueue: the rerun
    finishes with exactly one paid generation per job, every file verified by sha256."""
    emu = await start_emulator(
        seed=7,
        account_concurrency=16,
        time_scale=0.001,
        queue_list_cap=5,
        echo_defaults=True,
        history_newest_first=False,
        events_for_other_namespaces=False,
        faults=FaultConfig(enqueue_cut_rate=0.15),
    )
    if shape == "distinct":
        manifest = org_billed(write_manifest(tmp_path, count=JOBS))
    else:
        manifest = org_billed(replica_manifest(tmp_path, prompts=4, replicas=JOBS // 4))
    seeded = seed_last_weeks_night(emu, manifest)
    flags = ("-j", "16", "--request-timeout", "2", "--reconcile-interval", "2")
    killed = await harness.run(emu, manifest, *flags, on_start=kill_after(emu, JOBS // 3))
    assert killed.code == -signal.SIGKILL
    assert "submitting" in {row["state"] for row in journal_jobs(tmp_path / "out" / "e2e").values()}
    for _ in range(3):
        final = await harness.run(emu, manifest, *flags, limit_s=120)
        if final.code == 0:
            break
    assert final.code == 0, final.stderr
    assert emu.counters.faults["enqueue_cut"] >= 3  # the cut answers really happened
    assert_paid_once(tmp_path / "out" / "e2e", emu, JOBS, seeded)
