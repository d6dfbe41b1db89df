"""Delivery end to end: the demo (a copy of jobs/demo.yaml with `deliver:`) run by the real CLI against
the emulator, its results checked in the emulator's repository: bytes, commits, history, reruns."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchgen.emulator import Emulator, LatencyConfig
from tests.e2e.conftest import api_args, run_cli

REPO = Path(__file__).resolve().parents[2]
NS, NAME = "team", "campaigns"
PREFIX = "campaigns/demo"


def demo(root: Path, *, pattern: str = "{name}/{aspect_ratio}", **deliver: Any) -> Path:
    """jobs/demo.yaml and its reference image, delivering to team/campaigns under campaigns/demo.
    The pattern leaves the key out, so an edited job's result keeps its path (a new version)."""
    shutil.copytree(REPO / "jobs" / "refs", root / "refs", dirs_exist_ok=True)
    data = yaml.safe_load((REPO / "jobs" / "demo.yaml").read_text(encoding="utf-8"))
    data["output"] = {"pattern": pattern}
    data["deliver"] = {"repo": f"{NS}/{NAME}", "path": "campaigns/{name}", **deliver}
    path = root / "demo.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def edit_coastline(manifest: Path) -> None:
    data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    shot = next(job for job in data["jobs"] if job["name"] == "coastline")
    shot["multi_prompt"][1]["prompt"] = "Camera rises to reveal a lighthouse at dusk"
    manifest.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


async def run(emu: Emulator, root: Path, *extra: str, **kw: Any) -> Any:
    return await run_cli(
        "run", "demo.yaml", "-o", "out", *api_args(emu, "--inline-assets", *extra), cwd=root, **kw
    )


def repo_writes(emu: Emulator) -> int:
    """Requests that write to a repository (workspaces, staging, chunks, commits, PUT files); the
    write probe (naming an existing branch, which changes nothing) is left out."""
    return sum(
        n
        for route, n in emu.counters.requests.items()
        if route.split(" ", 1)[0] not in ("GET", "HEAD")
        and route.split(" ", 1)[1].startswith("/api/repos/")
        and not route.endswith("/branches")
    )


def sent_twice(emu: Emulator) -> list[tuple[str, str]]:
    """(path, sha256) pairs that more than one commit carried, or more than one request sent."""
    committed: Counter[tuple[str, str]] = Counter()
    for commit in emu.repo_commits(NS, NAME):
        files = emu.repo_files(NS, NAME, revision=commit.id)
        committed.update((path, files[path].sha256) for path in commit.sent)
    received = emu.counters.files_received
    return sorted({pair for counter in (committed, received) for pair, n in counter.items() if n > 1})


def made(emu: Emulator, namespace: str = NS, name: str = NAME) -> list[Any]:
    """The commits batchgen made (a new repository's first workspace adds Oxen's initial commit)."""
    return [c for c in emu.repo_commits(namespace, name) if "[batchgen:" in c.message]


def assert_delivered(emu: Emulator, run_dir: Path, jobs: int = 9) -> None:
    """Every result and sidecar of the run directory is in the repository, byte for byte, and the
    results files too; the videos are the emulator's own results."""
    files = emu.repo_files(NS, NAME)
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    rows = [row for row in rows if row["planned"]]  # the plan's; results of an earlier manifest follow
    assert len(rows) == jobs and {r["state"] for r in rows} == {"done"}
    for row in rows:
        video = run_dir / row["output_path"]
        for local in (video, video.with_suffix(".json")):
            stored = files[f"{PREFIX}/{local.relative_to(run_dir).as_posix()}"]
            assert stored.sha256 == hashlib.sha256(local.read_bytes()).hexdigest()
        assert files[f"{PREFIX}/{row['output_path']}"].sha256 == emu.result_sha256(row["generation_id"])
    for name in ("results.csv", "results.jsonl", "report.html"):
        assert files[f"{PREFIX}/{name}"].data == (run_dir / name).read_bytes()


def ledger(run_dir: Path) -> dict[str, tuple[str, str | None]]:
    conn = sqlite3.connect(run_dir / "state.sqlite")
    try:
        return {p: (s, c) for p, s, c in conn.execute("SELECT path, state, commit_id FROM deliveries")}
    finally:
        conn.close()


async def test_the_demo_is_delivered_in_few_commits_and_an_edit_adds_one_commit_of_changed_results(
    emulator: Any, tmp_path: Path
) -> None:
    """The demo's 21 files are delivered in fewer commits than files (into a repository `create: true`
    made private); a rerun sends nothing; an edit sends only the changed results (one commit) and the
    run files."""
    emu = await emulator(latency=LatencyConfig(latency_sigma=0.0))
    manifest = demo(tmp_path, create=True)
    first = await run(emu, tmp_path)
    assert first.code == 0, first.stderr
    run_dir = tmp_path / "out" / "demo"
    assert_delivered(emu, run_dir)
    assert emu.state.repos.repo(NS, NAME).is_public is False  # created by `create: true`, and private
    commits = made(emu)
    assert len(emu.repo_files(NS, NAME)) == 21 and len(commits) < 21  # 9 x (video, sidecar) + 3 run files
    assert "delivered 21/21 files to team/campaigns@main:campaigns/demo" in first.stderr
    assert all(c.message.startswith("batchgen demo: ") for c in commits)
    assert {state for state, _ in ledger(run_dir).values()} == {"delivered"}
    assert {commit for _, commit in ledger(run_dir).values()} <= {c.id for c in commits}
    status = await run_cli("status", "out/demo", cwd=tmp_path)
    assert (
        "delivered 18/18 result files (with sidecars) to team/campaigns@main:campaigns/demo" in status.stdout
    )

    writes = repo_writes(emu)
    again = await run(emu, tmp_path)
    assert again.code == 0 and repo_writes(emu) == writes  # nothing is sent again

    edit_coastline(manifest)
    # the 9 paid ($13.44, 3 of them now superseded) and the 3 new coastline takes ($6.72) pass the
    # demo's $20 budget: the superseded ones count
    edited = await run(emu, tmp_path, "--budget", "30")
    assert edited.code == 0, edited.stderr
    assert_delivered(emu, run_dir)
    added = made(emu)[len(commits) :]
    changed = sorted(
        f"{PREFIX}/videos/coastline/{ratio}.{ext}"
        for ratio in ("16x9", "9x16", "1x1")
        for ext in ("mp4", "json")
    )
    results = [c for c in added if any("/videos/" in path for path in c.sent)]
    assert len(results) == 1, [c.message for c in added]  # the changed results, in one commit
    assert sorted(p for p in results[0].sent if "/videos/" in p) == changed
    run_files = [f"{PREFIX}/report.html", f"{PREFIX}/results.csv", f"{PREFIX}/results.jsonl"]
    assert sorted(p for c in added for p in c.sent) == sorted(changed + run_files)  # nothing else sent
    assert len(added) <= 2
    print(f"FIGURE deliver demo: 21 files in {len(commits)} commits; the edit added {len(added)} commits")
    history = emu.repo_commits(NS, NAME, path=f"{PREFIX}/videos/coastline/16x9.mp4")
    assert len(history) == 2  # the first take and the edited one, both in the history
    assert sent_twice(emu) == []


async def test_a_kill_9_during_delivery_then_a_rerun_delivers_the_rest_sending_nothing_twice(
    emulator: Any, tmp_path: Path
) -> None:
    """SIGKILL inside the emulator's upload handler, after the commit and before its answer: the
    journal says `sending`; the rerun finds the commit by its token and sends only the rest."""
    emu = await emulator()
    emu.create_repo(NS, NAME)
    demo(tmp_path)
    proc: list[asyncio.subprocess.Process] = []
    killed: list[str] = []

    def kill_at_first_commit(event: str, detail: Any) -> None:
        if event == "committed" and not killed and proc:
            killed.append(detail)
            with contextlib.suppress(ProcessLookupError):
                proc[0].kill()

    emu.counters.listeners.append(kill_at_first_commit)

    async def started(p: asyncio.subprocess.Process) -> None:
        proc.append(p)

    crashed = await run(emu, tmp_path, on_start=started)
    assert crashed.code == -9 and killed
    run_dir = tmp_path / "out" / "demo"
    assert "sending" in {state for state, _ in ledger(run_dir).values()}
    emu.counters.listeners.remove(kill_at_first_commit)

    rerun = await run(emu, tmp_path)
    assert rerun.code == 0, rerun.stderr
    assert_delivered(emu, run_dir)
    assert sent_twice(emu) == []
    assert len(emu.counters.files_received) == len(emu.repo_files(NS, NAME)) == 21  # each sent once
    assert emu.workspaces(NS, NAME) == []
    assert killed[0] in {commit for _, commit in ledger(run_dir).values()}


@pytest.mark.parametrize("problem", ["missing", "read-only", "no-branch"])
async def test_a_missing_or_read_only_target_is_exit_2_before_anything_is_paid(
    emulator: Any, tmp_path: Path, problem: str
) -> None:
    """A missing repository, a read-only one or one without the branch: exit 2 naming it, before any
    generation or repository write."""
    emu = await emulator()
    if problem == "read-only":
        emu.create_repo(NS, NAME)
        emu.state.repos.commit(NS, NAME, "main", {}, message="init", author="a", email="e")
        emu.set_repo_read_only(NS, NAME)
    elif problem == "no-branch":
        emu.create_repo(NS, NAME)
        emu.state.repos.commit(NS, NAME, "other", {}, message="init", author="a", email="e")
    demo(tmp_path)
    result = await run(emu, tmp_path)
    assert result.code == 2, result.stderr
    says = {"missing": "does not exist", "read-only": "cannot write", "no-branch": "has no branch 'main'"}
    assert says[problem] in result.stderr and "team/campaigns" in result.stderr
    assert emu.counters.generations_enqueued == 0 and repo_writes(emu) == 0


async def test_refused_deliveries_fail_the_delivery_not_the_run_and_batchgen_deliver_finishes_them(
    emulator: Any, tmp_path: Path
) -> None:
    """The repository turns read-only once generation has started: every job is still done, the run
    exits 1 naming what was not delivered; `batchgen deliver` later sends only that."""
    emu = await emulator()
    emu.create_repo(NS, NAME)
    demo(tmp_path)

    def lock_on_first_enqueue(event: str, detail: Any) -> None:
        if event == "enqueued":
            emu.set_repo_read_only(NS, NAME)

    emu.counters.listeners.append(lock_on_first_enqueue)
    result = await run(emu, tmp_path)
    emu.counters.listeners.remove(lock_on_first_enqueue)
    assert result.code == 1, result.stderr
    assert "9/9 done" in result.stderr and "not delivered" in result.stderr and "403" in result.stderr
    assert "batchgen deliver out/demo" in result.stderr
    run_dir = tmp_path / "out" / "demo"
    status = await run_cli("status", "out/demo", cwd=tmp_path)
    assert "delivered 0/18" in status.stdout and "failed" in status.stdout

    emu.set_repo_read_only(NS, NAME, read_only=False)
    args = ["--api-base", emu.base_url, "--api-key", emu.api_key]
    finished = await run_cli("deliver", "out/demo", *args, cwd=tmp_path)
    assert finished.code == 0, finished.stderr
    assert "delivered 21/21 files" in finished.stderr
    assert_delivered(emu, run_dir)
    assert sent_twice(emu) == []
    writes = repo_writes(emu)
    assert (await run_cli("deliver", "out/demo", *args, cwd=tmp_path)).code == 0
    assert repo_writes(emu) == writes

    elsewhere = await run_cli(
        "deliver", "out/demo", "--to", "team/archive:old/{name}", "--create", *args, cwd=tmp_path
    )
    assert elsewhere.code == 0, elsewhere.stderr
    assert len([p for p in emu.repo_files("team", "archive") if p.startswith("old/demo/videos/")]) == 18


async def test_deliver_refuses_a_run_directory_without_a_target_or_from_the_sandbox(
    emulator: Any, tmp_path: Path
) -> None:
    """`deliver` without a target asks for --to, refuses a bad --to path; `run --deliver` checks the
    repository first, then delivers all 21 files."""
    emu = await emulator()
    manifest = demo(tmp_path)
    data = yaml.safe_load(manifest.read_text())
    del data["deliver"]
    manifest.write_text(yaml.safe_dump(data))
    assert (await run(emu, tmp_path)).code == 0
    args = ["--api-base", emu.base_url, "--api-key", emu.api_key]
    refused = await run_cli("deliver", "out/demo", *args, cwd=tmp_path)
    assert refused.code == 2 and "--to" in refused.stderr
    bad = await run_cli("deliver", "out/demo", "--to", "team/x:../up", *args, cwd=tmp_path)
    assert bad.code == 2 and "'..' segment" in bad.stderr
    flagged = await run(emu, tmp_path, "--deliver", "team/flagged:drop/{name}")
    assert flagged.code == 2 and "does not exist" in flagged.stderr  # checked before anything is sent
    emu.create_repo("team", "flagged")
    flagged = await run(emu, tmp_path, "--deliver", "team/flagged:drop/{name}")
    assert flagged.code == 0, flagged.stderr
    assert len([p for p in emu.repo_files("team", "flagged") if p.startswith("drop/demo/")]) == 21


async def test_plan_with_a_key_checks_the_delivery_repository_without_writing(
    emulator: Any, tmp_path: Path
) -> None:
    """`plan` with a key reports a missing delivery repository (exit 2) and, once it exists, passes, having
    sent only GETs."""
    emu = await emulator()
    demo(tmp_path)
    args = ["--api-base", emu.base_url, "--api-key", emu.api_key]
    missing = await run_cli("plan", "demo.yaml", *args, cwd=tmp_path)
    assert missing.code == 2 and "team/campaigns does not exist" in missing.stderr
    emu.create_repo(NS, NAME)
    found = await run_cli("plan", "demo.yaml", *args, cwd=tmp_path)
    assert found.code == 0, found.stderr
    writes = [route for route in emu.counters.requests if not route.startswith("GET ")]
    assert writes == [] and emu.repo_commits(NS, NAME) == [] and emu.workspaces(NS, NAME) == []
