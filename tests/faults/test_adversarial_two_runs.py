"""Guarantee 62: two runs of one manifest into two output trees at once (a cron job and a person, two
machines on one key), with lost answers: identical requests cannot be told apart by their echo, so a
row both runs match is fetched by both; no paid generation is left fetched by nobody, and each run
that sees rows it cannot account for says another run of this manifest may be live."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from batchgen.emulator import FaultConfig
from tests.faults.conftest import Harness, replica_manifest, write_manifest

JOBS = 24


def fetched(run_dir: Path) -> dict[str, Path]:
    """Generation id -> the file under videos/ holding it (from each result's sidecar; the results are
    MP4s: `clip-15.json` is `clip-15.mp4`'s, `clip-15.take-ID.json` its extra take's)."""
    found = {}
    for sidecar in sorted((run_dir / "videos").rglob("*.json")):
        data = json.loads(sidecar.read_text())
        found[str(data["generation_id"])] = sidecar.with_suffix(".mp4")
    return found


@pytest.mark.parametrize("shape", ["distinct", "replicas"])
async def test_two_runs_of_one_manifest_into_two_trees_fetch_every_paid_generation(
    start_emulator: Any, harness: Harness, tmp_path: Path, shape: str
) -> None:
    """Two runs of one 24-job manifest started together into out-a/ and out-b/, 30% of POST answers
    lost: 48 generations (each run pays each job once), every one of them on disk in at least one
    tree, each tree has all 24 jobs done, and the runs that adopted rows the other may own say so,
    pointing at --only
    (before the fix: 4-6 generations adopted by both runs and as many paid ones fetched by neither)."""
    emu = await start_emulator(seed=31, account_concurrency=16, faults=FaultConfig(enqueue_cut_rate=0.3))
    if shape == "distinct":
        manifest = write_manifest(tmp_path, count=JOBS)
    else:
        manifest = replica_manifest(tmp_path, prompts=4, replicas=JOBS // 4)
    flags = ("-j", "8", "--request-timeout", "2")
    first, second = await asyncio.gather(
        harness.run(emu, manifest, *flags, out="out-a"), harness.run(emu, manifest, *flags, out="out-b")
    )
    assert (first.code, second.code) == (0, 0), first.stderr + second.stderr
    assert emu.counters.faults["enqueue_cut"] >= 4
    assert emu.counters.generations_enqueued == 2 * JOBS  # each run paid for each job once, never twice
    made = {g.generation_id for g in emu.generations()}
    assert all(g.status == "succeeded" for g in emu.generations())
    trees = [fetched(tmp_path / out / "e2e") for out in ("out-a", "out-b")]
    unfetched = made - set(trees[0]) - set(trees[1])
    assert unfetched == set(), f"{len(unfetched)} paid generation(s) fetched by neither run"
    for result in (first, second):
        assert f"{JOBS}/{JOBS} done" in result.stderr
    for out, tree in zip(("out-a", "out-b"), trees, strict=True):
        takes = [path for path in tree.values() if ".take-" in path.name]
        assert len(tree) == JOBS + len(takes)  # every job's result, and the extra takes beside them
        status = await harness.cli("status", f"{out}/e2e")
        assert status.code == 0 and f"{JOBS} jobs · done {JOBS}" in status.stdout, status.stdout
        assert (f"{len(takes)} extra take(s)" in status.stdout) == bool(takes), status.stdout
    both = set(trees[0]) & set(trees[1])
    warned = [r for r in (first, second) if "another run of this manifest may be live" in r.stderr]
    if both:
        assert warned, "rows both runs adopted, and neither said so"
    for result in warned:
        assert "--only" in result.stderr
    print(
        f"FIGURE two trees[{shape}]: {len(made)} generations made, {len(both)} fetched by both, "
        f"{len(unfetched)} by neither, {emu.counters.faults['enqueue_cut']} answers lost"
    )
