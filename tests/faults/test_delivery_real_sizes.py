"""Delivery at real sizes against the emulator in its upstream-faithful default (PUT …/file refuses more
than 2 MiB, as oxen-server's actix-multipart limit does): eight 5 s videos of 6 MB and one 10 s video of
12 MB go through a workspace (`file` parts, and the chunked version upload over 10 MiB) in fewer commits
than files. Then a `kill -9` at three awkward moments — between staging and commit, in the middle of a
chunked upload, and after a commit whose answer was lost — and a rerun: every file delivered byte for
byte, nothing staged or committed twice beyond what the killed request forces, no workspace left."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from batchgen.emulator import Emulator, LatencyConfig
from tests.faults.conftest import Harness, assert_complete, results, write_manifest

NS, NAME = "team", "campaigns"
BYTES_PER_S = 1_200_000  # a 5 s video is 6 MB, a 10 s one 12 MB (over the 10 MiB chunking threshold)
JOBS = 9
WANTED = 2 * JOBS + 3  # each video and its sidecar, then results.csv, results.jsonl and report.html


def sized_manifest(root: Path) -> Path:
    """Eight 5 s clips and one 10 s clip, delivered to team/campaigns under drops/{name}."""
    manifest = write_manifest(
        root,
        count=8,
        extra_jobs=[{"name": "long", "prompt": "One long take {n}", "duration": 10, "matrix": {"n": [0]}}],
        deliver={"repo": f"{NS}/{NAME}", "path": "drops/{name}"},
    )
    return manifest


async def sized_emulator(start_emulator: Any) -> Emulator:
    emu: Emulator = await start_emulator(
        time_scale=0.01,
        result_bytes_per_second=BYTES_PER_S,
        latency=LatencyConfig(video_render_median_seconds=100, latency_sigma=0.0),
    )
    emu.create_repo(NS, NAME)
    return emu


def assert_delivered_once(emu: Emulator, run_dir: Path) -> None:
    """Every result, sidecar and run file on the branch with the run directory's bytes; no workspace
    left; the videos are the emulator's own results."""
    files = emu.repo_files(NS, NAME)
    rows = results(run_dir)
    assert len(rows) == JOBS and {r["state"] for r in rows} == {"done"}
    for row in rows:
        video = run_dir / row["output_path"]
        for local in (video, video.with_suffix(".json")):
            stored = files[f"drops/e2e/{local.relative_to(run_dir).as_posix()}"]
            assert stored.sha256 == hashlib.sha256(local.read_bytes()).hexdigest(), local
        assert files[f"drops/e2e/{row['output_path']}"].sha256 == emu.result_sha256(row["generation_id"])
    for name in ("results.csv", "results.jsonl", "report.html"):
        assert files[f"drops/e2e/{name}"].data == (run_dir / name).read_bytes()
    assert emu.workspaces(NS, NAME) == []


def delivery_states(run_dir: Path) -> Counter[str]:
    conn = sqlite3.connect(run_dir / "state.sqlite")
    try:
        return Counter(state for (state,) in conn.execute("SELECT state FROM deliveries"))
    finally:
        conn.close()


def batchgen_commits(emu: Emulator) -> list[Any]:
    return [c for c in emu.repo_commits(NS, NAME) if "[batchgen:" in c.message]


async def test_real_sized_videos_are_delivered_in_few_commits_through_workspaces(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """Real-sized videos (6 and 12 MB) are delivered through workspaces in fewer commits than files, each file
    sent once, the large one in chunks."""
    emu = await sized_emulator(start_emulator)
    result = await harness.run(emu, sized_manifest(tmp_path), "-j", "9", limit_s=120)
    assert result.code == 0, result.stderr
    run_dir = tmp_path / "out" / "e2e"
    assert_complete(run_dir, emu, JOBS)
    sizes = sorted((run_dir / r["output_path"]).stat().st_size for r in results(run_dir))
    assert sizes[:8] == [6_000_000] * 8 and sizes[8] == 12_000_000
    assert_delivered_once(emu, run_dir)
    commits = batchgen_commits(emu)
    assert 1 <= len(commits) < WANTED
    assert len(emu.counters.files_received) == WANTED
    assert max(emu.counters.files_received.values()) == 1  # no file's bytes sent twice
    assert emu.counters.chunks_received == 2  # 12 MB in chunks of 10 MiB
    assert not [r for r in emu.counters.requests if r.startswith("PUT ") and "/file/" in r]
    print(f"FIGURE real sizes: {WANTED} files ({sum(sizes) / 1e6:.0f} MB of video) in {len(commits)} commits")


KILL_AT = {
    # the first staging request carrying a 6 MB video was handled: the workspace holds it, no commit
    "between-staging-and-commit": "staged",
    # the first 10 MiB chunk of the 12 MB video was stored; the rest never comes
    "during-a-chunked-upload": "chunk_stored",
    # the commit was made; the process dies before it reads the answer
    "after-a-commit-whose-answer-was-lost": "committed",
}


@pytest.mark.parametrize("moment", list(KILL_AT))
async def test_a_kill_9_during_delivery_then_a_rerun_delivers_every_file_once(
    start_emulator: Any, harness: Harness, tmp_path: Path, moment: str
) -> None:
    """A kill -9 while staging, mid chunked upload or after a commit whose answer was lost: the rerun delivers
    every file, re-sending none (but the cut chunks) and not committing twice."""
    emu = await sized_emulator(start_emulator)
    manifest = sized_manifest(tmp_path)
    proc: list[asyncio.subprocess.Process] = []
    killed: list[Any] = []

    def kill(event: str, detail: Any) -> None:
        if event == KILL_AT[moment] and not killed and proc:
            killed.append(detail)
            with contextlib.suppress(ProcessLookupError):
                proc[0].kill()

    async def started(p: asyncio.subprocess.Process) -> None:
        proc.append(p)

    emu.counters.listeners.append(kill)
    crashed = await harness.run(emu, manifest, "-j", "9", limit_s=120, on_start=started)
    assert crashed.code == -9 and killed, crashed.stderr
    emu.counters.listeners.remove(kill)
    run_dir = tmp_path / "out" / "e2e"
    assert delivery_states(run_dir)["sending"] >= 1  # the journal says what to look for
    left = emu.workspaces(NS, NAME)
    if moment != "after-a-commit-whose-answer-was-lost":
        assert len(left) == 1  # the killed run's workspace, with what it staged
    received = Counter(emu.counters.files_received)
    commits_before = len(batchgen_commits(emu))

    rerun = await harness.run(emu, manifest, "-j", "9", limit_s=120)
    assert rerun.code == 0, rerun.stderr
    assert_complete(run_dir, emu, JOBS)
    assert_delivered_once(emu, run_dir)
    assert delivery_states(run_dir) == Counter({"delivered": WANTED})
    resent = {pair: n for pair, n in emu.counters.files_received.items() if n > 1}
    if moment == "during-a-chunked-upload":
        # the rerun sends that file's chunks again (the server keeps the ones it already stored and
        # assembles the file once); no other file is sent twice
        assert all("long" in path for path, _ in resent), resent
    else:
        assert resent == {}, resent  # a staged file is committed from the workspace, not sent again
    assert set(received) <= set(emu.counters.files_received)
    commits = batchgen_commits(emu)
    if moment == "after-a-commit-whose-answer-was-lost":
        assert killed[0] in {c.id for c in commits}  # found by its token, not made again
    assert len(commits) - commits_before <= 3
    print(
        f"FIGURE kill -9 {moment}: {len(left)} workspace(s) left by the killed run; rerun: "
        f"{len(commits) - commits_before} commit(s), {sum(resent.values()) - len(resent)} file(s) re-sent"
    )
