"""Delivery under faults: cut commit answers, 5xx before and after the commit, a server that commits
after the client gave up, 5xx on staging and on the history it looks at. Nothing is lost, and nothing
is sent twice beyond what an unanswered request forces: every commit sent again is one the branch
showed was not made, and no file's bytes reach the server twice."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from batchgen.emulator import FaultConfig, LatencyConfig
from tests.e2e.test_deliver import NAME, NS, made, sent_twice  # the repository they look at
from tests.faults.conftest import Harness, assert_complete, results, write_manifest

JOBS = 30
COMMIT = "POST /api/repos/{namespace}/{repo}/workspaces/{workspace_id}/merge/{branch}"
STAGE = "POST /api/repos/{namespace}/{repo}/workspaces/{workspace_id}/files/{dir}"
HISTORY = "GET /api/repos/{namespace}/{repo}/commits/history/{resource}"
REQUEST_S = 1.0


def delivering_manifest(root: Path) -> Path:
    manifest = write_manifest(root, count=JOBS)
    data = yaml.safe_load(manifest.read_text())
    data["output"] = {"pattern": "{name}/set-{group}/{n}.mp4"}
    data["jobs"][0]["vars"] = {"group": "a"}
    data["jobs"].append(
        {
            **data["jobs"][0],
            "name": "alt",
            "prompt": "Alternate take {n}",
            "vars": {"group": "b"},
            "matrix": {"n": [0, 1, 2]},
        }
    )
    data["deliver"] = {"repo": f"{NS}/{NAME}", "path": "drops/{name}"}
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    return manifest


async def test_cut_answers_and_5xx_during_delivery_lose_nothing_and_send_nothing_twice(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """Cut answers, 5xx before and after a commit and a stalled commit during delivery: every file lands once,
    byte for byte, and no commit is resent blindly."""
    # 5xx at random on staging and on the history read after a lost answer; on the commits, one of each
    # fault in turn, so each really happens whatever the batching: the first commit's answer cut, the
    # second's replaced by a 5xx after it was made, the third request refused 5xx before anything, the
    # fourth stalled past the client's timeout (the server commits after the client gave up).
    base = FaultConfig(server_error_rate=0.2, server_error_routes=(STAGE, HISTORY))
    emu = await start_emulator(
        seed=11, time_scale=0.01, faults=base, latency=LatencyConfig(video_render_median_seconds=150)
    )
    emu.create_repo(NS, NAME)
    before_commit = {
        3: {"server_error_rate": 1.0, "server_error_routes": (COMMIT,)},
        4: {
            "slow_response_rate": 1.0,
            "slow_response_seconds": REQUEST_S * 1.5,
            "slow_response_routes": (COMMIT,),
        },
    }
    after_commit = {1: {"upload_cut_rate": 1.0}, 2: {"upload_error_after_commit_rate": 1.0}}
    seen = {"requests": 0, "commits": 0}

    def schedule(event: str, detail: Any) -> None:
        """Faults for one commit request at a time (each rolled as soon as this returns)."""
        if event == "request":
            emu.faults = base
            if detail.route == COMMIT:
                seen["requests"] += 1
                emu.set_faults(**before_commit.get(seen["requests"], {}))
        elif event == "committed":
            seen["commits"] += 1
            emu.set_faults(upload_fault_routes=(COMMIT,), **after_commit.get(seen["commits"], {}))
        elif event == "upload_answered":
            emu.faults = base

    emu.counters.listeners.append(schedule)
    manifest = delivering_manifest(tmp_path)
    result = await harness.run(emu, manifest, "-j", "12", "--request-timeout", str(REQUEST_S), limit_s=120)
    assert result.code == 0, result.stderr
    run_dir = tmp_path / "out" / "e2e"
    assert_complete(run_dir, emu, JOBS + 3)

    files = emu.repo_files(NS, NAME)
    for row in results(run_dir):  # every result and sidecar, byte for byte
        video = run_dir / row["output_path"]
        assert files[f"drops/e2e/{row['output_path']}"].sha256 == emu.result_sha256(row["generation_id"])
        sidecar = files[f"drops/e2e/{row['output_path'].removesuffix('.mp4')}.json"]
        assert sidecar.sha256 == hashlib.sha256(video.with_suffix(".json").read_bytes()).hexdigest()
    assert {"drops/e2e/results.csv", "drops/e2e/results.jsonl", "drops/e2e/report.html"} <= set(files)
    wanted = 2 * (JOBS + 3) + 3

    commits = made(emu)
    assert sent_twice(emu) == []  # no file reached the server twice, or the branch twice
    assert len(emu.counters.files_received) == wanted == len(files)
    assert emu.workspaces(NS, NAME) == []
    log = emu.counters.request_log or []
    sent = [r for r in log if r.route == COMMIT]
    answered_5xx = sum(1 for r in sent if r.status is not None and r.status >= 500)
    refused_before_commit = answered_5xx - emu.counters.faults["upload_error_after_commit"]
    # Every commit request either made one of the commits or was refused before doing anything (and
    # the branch was looked at before it was sent again): no blind resend.
    assert len(sent) == len(commits) + refused_before_commit
    faulted = Counter({k: v for k, v in emu.counters.faults.items() if k != "rate_limit"})
    for kind in ("upload_cut", "upload_error_after_commit", "server_error", "slow_response"):
        assert faulted[kind] >= 1, faulted  # each fault really happened
    assert len(commits) < wanted
    print(
        f"FIGURE delivery faults: {len(sent)} commit requests, {len(commits)} commits, {wanted} files, "
        f"{refused_before_commit} refused before commit, faults {dict(faulted)}"
    )
