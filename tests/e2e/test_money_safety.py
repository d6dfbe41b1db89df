"""Money safety in the configurations teams use: sandbox vs real, run directories moved between APIs,
a second manifest with the same name, the live price, private result files, the upload repository,
refused reference images, 429s at enqueue and org-billed jobs whose events never come."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import yaml

from batchgen.emulator import Emulator
from tests.e2e.conftest import api_args, clean_env, run_cli
from tests.e2e.test_run import MODEL, assert_all_verified, enqueues, results, write_manifest

ASSET = Path(__file__).resolve().parents[2] / "jobs" / "refs" / "mug.png"


def posts(emu: Emulator) -> int:
    return int(emu.counters.snapshot()["requests"].get("POST /api/ai/queue", 0))


async def test_sandbox_results_live_apart_and_a_real_run_pays_for_every_job(
    emulator: Any, tmp_path: Path
) -> None:
    """`--sandbox` writes to <name>.sandbox; the real run afterwards generates every job for real."""
    manifest = write_manifest(tmp_path, count=3)
    sandbox = await run_cli("run", str(manifest), "-o", "out", "--sandbox", "--no-progress", cwd=tmp_path)
    assert sandbox.code == 0, sandbox.stderr
    assert "out/e2e.sandbox: 3/3 done" in sandbox.stderr
    emu = await emulator()
    real = await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert real.code == 0, real.stderr
    assert enqueues(emu) == 3
    assert_all_verified(tmp_path / "out" / "e2e", emu, 3)
    assert len(results(tmp_path / "out" / "e2e.sandbox")) == 3  # the sandbox run is left as it was


async def test_a_sandbox_run_directory_renamed_for_a_real_run_is_refused(
    emulator: Any, tmp_path: Path
) -> None:
    """Placeholders moved to where a real run looks: exit 2 naming the sandbox, nothing submitted."""
    manifest = write_manifest(tmp_path, count=2)
    sandbox = await run_cli("run", str(manifest), "-o", "out", "--sandbox", "--no-progress", cwd=tmp_path)
    assert sandbox.code == 0, sandbox.stderr
    shutil.move(tmp_path / "out" / "e2e.sandbox", tmp_path / "out" / "e2e")
    emu = await emulator()
    real = await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert real.code == 2
    assert "holds results from sandbox" in real.stderr and "run without --sandbox" in real.stderr
    assert posts(emu) == 0


async def test_a_run_directory_moved_to_another_api_base_is_refused(emulator: Any, tmp_path: Path) -> None:
    """Results from API A are never counted as done for API B: exit 2 naming both, nothing sent to B."""
    first, second = await emulator(), await emulator()
    manifest = write_manifest(tmp_path, count=2)
    assert (await run_cli("run", str(manifest), "-o", "out", *api_args(first), cwd=tmp_path)).code == 0
    moved = await run_cli("run", str(manifest), "-o", "out", *api_args(second), cwd=tmp_path)
    assert moved.code == 2
    assert first.base_url in moved.stderr and second.base_url in moved.stderr
    assert posts(second) == 0
    status = await run_cli("status", "out/e2e", cwd=tmp_path)
    assert f"(results from {first.base_url})" in status.stdout


async def test_a_journal_without_api_records_is_checked_against_the_api(
    emulator: Any, tmp_path: Path
) -> None:
    """A journal from before batchgen recorded the API: the generations are looked up; unknown ones
    (another API) refuse the run, known ones stamp the journal and the run goes on sending nothing."""
    first, second = await emulator(), await emulator()
    manifest = write_manifest(tmp_path, count=2)
    assert (await run_cli("run", str(manifest), "-o", "out", *api_args(first), cwd=tmp_path)).code == 0
    journal = tmp_path / "out" / "e2e" / "state.sqlite"
    with sqlite3.connect(journal) as conn:
        conn.execute("UPDATE jobs SET api = NULL")
        conn.execute("DELETE FROM meta WHERE key = 'api'")
    refused = await run_cli("run", str(manifest), "-o", "out", *api_args(second), cwd=tmp_path)
    assert refused.code == 2 and "an unknown API" in refused.stderr
    again = await run_cli("run", str(manifest), "-o", "out", *api_args(first), cwd=tmp_path)
    assert again.code == 0, again.stderr
    assert posts(first) == 2 and posts(second) == 0
    with sqlite3.connect(journal) as conn:
        assert {row[0] for row in conn.execute("SELECT api FROM jobs")} == {first.base_url}


async def test_a_second_manifest_with_the_same_name_never_overwrites_paid_results(
    emulator: Any, tmp_path: Path
) -> None:
    """Manifest B reuses A's name and paths: A's files move to superseded/ with their sidecars, only B's
    jobs count as done, and running A again brings A's files back without paying again."""
    emu = await emulator()
    first = write_manifest(tmp_path, count=3, prompt="Alpha shot {n}")
    (tmp_path / "b").mkdir()
    second = write_manifest(tmp_path / "b", count=3, prompt="Beta shot {n}")
    assert (await run_cli("run", str(first), "-o", "out", *api_args(emu), cwd=tmp_path)).code == 0
    run_dir = tmp_path / "out" / "e2e"
    alpha = {r["output_path"]: r for r in results(run_dir)}
    beta_run = await run_cli("run", str(second), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert beta_run.code == 0, beta_run.stderr
    assert "3/3 done" in beta_run.stderr
    assert_all_verified(run_dir, emu, 3)  # the paths now hold B's results
    for path, row in alpha.items():
        kept = run_dir / "superseded" / row["key"][:12] / path.removeprefix("videos/")
        assert hashlib.sha256(kept.read_bytes()).hexdigest() == emu.result_sha256(row["generation_id"])
        assert json.loads(kept.with_suffix(".json").read_text())["job_key"] == row["key"]
    status = await run_cli("status", str(run_dir), cwd=tmp_path)
    assert status.code == 0
    assert "3 jobs · done 3" in status.stdout and "superseded 3" in status.stdout
    back = await run_cli("run", str(first), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert back.code == 0, back.stderr
    assert enqueues(emu) == 6  # A's results came back from superseded/, nothing was paid again
    for path, row in alpha.items():
        assert hashlib.sha256((run_dir / path).read_bytes()).hexdigest() == emu.result_sha256(
            row["generation_id"]
        )


async def test_the_live_price_is_quoted_and_its_change_said_in_one_line(
    emulator: Any, tmp_path: Path
) -> None:
    """With a key the registry's price wins over the shipped snapshot's, and a budget uses it;
    offline, `plan` says it quotes from the snapshot and of when."""
    emu = await emulator()
    spec = emu.state.catalog.get(MODEL)
    assert spec is not None
    emu.override_model(
        MODEL, {**spec.public, "pricing": {"method": "per_video_output_second", "cost_per_second": 0.5}}
    )
    manifest = write_manifest(tmp_path, count=2)
    offline = await run_cli("plan", str(manifest), cwd=tmp_path)
    assert offline.code == 0 and "snapshot shipped with batchgen, of 2026-06-26" in offline.stderr
    assert "cost quote: $2.24 in total" in offline.stdout
    online = await run_cli(
        "plan", str(manifest), "--api-base", emu.base_url, "--api-key", emu.api_key, cwd=tmp_path
    )
    assert online.code == 0, online.stderr
    assert "the live price (per_video_output_second, cost_per_second 0.5) differs" in online.stderr
    assert "cost quote: $5.00 in total" in online.stdout
    budget = await run_cli("run", str(manifest), "-o", "out", *api_args(emu, "--budget", "3"), cwd=tmp_path)
    assert budget.code == 1 and "the budget was reached" in budget.stderr
    assert enqueues(emu) == 1  # at the snapshot's $1.12 a job, both would have been sent


async def test_a_private_result_on_the_api_origin_is_fetched_with_the_key(
    emulator: Any, tmp_path: Path
) -> None:
    """Result files that need the key (a private repository): each is tried once more with the key."""
    emu = await emulator(private_results=True)
    emu.counters.request_log = []
    manifest = write_manifest(tmp_path, count=3)
    result = await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert_all_verified(tmp_path / "out" / "e2e", emu, 3)
    downloads = [r for r in emu.counters.request_log if "/files/" in r.path]
    assert sorted((r.authorized, r.status) for r in downloads) == [(False, 404)] * 3 + [(True, 200)] * 3


async def test_the_key_never_goes_to_another_host_even_when_refused(emulator: Any, tmp_path: Path) -> None:
    """Result URLs on another origin that refuse us are never retried with the key: the job waits."""
    emu = await emulator(private_results=True)
    port = emu.base_url.rsplit(":", 1)[1]
    emu.state.config = dataclasses.replace(emu.state.config, public_base_url=f"http://localhost:{port}")
    emu.counters.request_log = []
    manifest = write_manifest(tmp_path, count=1)
    result = await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert result.code == 1
    downloads = [r for r in emu.counters.request_log if "/files/" in r.path]
    assert downloads and not any(r.authorized for r in downloads)


def asset_manifest(root: Path, **upload: Any) -> Path:
    shutil.copyfile(ASSET, root / "mug.png")
    manifest = write_manifest(root, count=2, prompt="@Image1 on a desk, take {n}")
    data = yaml.safe_load(manifest.read_text())
    data["assets"] = {"mug": "mug.png"}
    data["jobs"][0]["input_image"] = ["{asset:mug}"]
    data["upload"] = {"namespace": "acme", "repo": "campaign-refs", **upload}
    manifest.write_text(yaml.safe_dump(data))
    return manifest


async def test_a_missing_upload_repository_is_exit_2_before_anything_is_submitted(
    emulator: Any, tmp_path: Path
) -> None:
    """The upload repository does not exist: exit 2 with how to create it, 0 generations; with
    `create: true` it is created, public, and the run completes."""
    emu = await emulator(auto_create_repos=False)
    missing = await run_cli("run", str(asset_manifest(tmp_path)), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert missing.code == 2
    assert "the upload repository acme/campaign-refs (branch main) does not exist" in missing.stderr
    assert "create: true" in missing.stderr and posts(emu) == 0
    created = await run_cli(
        "run", str(asset_manifest(tmp_path, create=True)), "-o", "out", *api_args(emu), cwd=tmp_path
    )
    assert created.code == 0, created.stderr
    created_repo = emu.state.repos.repo("acme", "campaign-refs")
    assert created_repo is not None and created_repo.is_public is True  # the model fetches without a key
    assert enqueues(emu) == 2


async def test_a_private_upload_repository_is_exit_2_before_anything_is_submitted(
    emulator: Any, tmp_path: Path
) -> None:
    """The upload repository exists but is private: the image is uploaded, yet a HEAD without the key
    (what the model would send) answers 404, so the run stops with exit 2 and 0 generations instead of
    paying for jobs that cannot fetch their image; --inline-assets then runs them."""
    emu = await emulator(auto_create_repos=False)
    emu.create_repo("acme", "campaign-refs", is_public=False)
    refused = await run_cli("run", str(asset_manifest(tmp_path)), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert refused.code == 2, refused.stderr
    assert "the upload repository acme/campaign-refs is not public" in refused.stderr
    assert "--inline-assets" in refused.stderr and posts(emu) == 0
    inline = await run_cli(
        "run", str(asset_manifest(tmp_path)), "-o", "out", "--inline-assets", *api_args(emu), cwd=tmp_path
    )
    assert inline.code == 0, inline.stderr
    assert enqueues(emu) == 2


async def test_a_reference_image_answering_403_fails_its_job_at_once(emulator: Any, tmp_path: Path) -> None:
    """A reference URL the model cannot fetch (403): the job fails after one generation with a hint
    about private repositories, instead of paying its retries; the other job is done."""
    emu = await emulator()
    manifest = write_manifest(
        tmp_path,
        count=1,
        extra_jobs=[
            {
                "name": "private-ref",
                "prompt": "@Image1 in the rain",
                "vars": {"n": 99},
                "input_image": [f"{emu.base_url}/api/repos/acme/private/file/main/nope.png"],
            }
        ],
    )
    result = await run_cli("run", str(manifest), "-o", "out", *api_args(emu, "--retries", "2"), cwd=tmp_path)
    assert result.code == 1
    rows = {r["name"]: r for r in results(tmp_path / "out" / "e2e")}
    assert rows["clip"]["state"] == "done"
    assert (
        rows["private-ref"]["state"] == "failed"
        and "is its repository private?" in rows["private-ref"]["error"]
    )
    assert enqueues(emu) == 2  # one generation each: no retry of the refused reference


async def test_org_billed_jobs_finish_promptly_when_their_events_never_come(
    emulator: Any, tmp_path: Path
) -> None:
    """target_namespace rows whose completion events never reach the stream: the run looks for them
    early and then at 1.5x the renders seen, instead of waiting out the expected render per wave."""
    emu = await emulator(events_for_other_namespaces=False)
    manifest = write_manifest(
        tmp_path, count=8, defaults={"aspect_ratio": "16:9", "duration": 5, "target_namespace": "acme-org"}
    )
    started = time.monotonic()
    result = await run_cli(
        "run",
        str(manifest),
        "-o",
        "out",
        *api_args(emu, "-j", "2", "--reconcile-interval", "4"),
        cwd=tmp_path,
    )
    elapsed = time.monotonic() - started
    assert result.code == 0, result.stderr
    assert_all_verified(tmp_path / "out" / "e2e", emu, 8)
    assert emu.counters.snapshot()["events_sent"] == 0
    assert elapsed < 8, f"{elapsed:.1f} s: four waves of two should not each wait out the 4 s expected render"


async def test_a_key_on_the_command_line_is_warned_about(emulator: Any, tmp_path: Path) -> None:
    """`--api-key` shows in `ps`: the run says so once; OXEN_API_KEY does not trigger it."""
    emu = await emulator()
    manifest = write_manifest(tmp_path, count=1)
    flagged = await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert flagged.code == 0 and flagged.stderr.count("shows in `ps`") == 1
    env = clean_env(OXEN_API_KEY=emu.api_key)
    quiet = await run_cli(
        "run", str(manifest), "-o", "out", "--api-base", emu.base_url, "--no-progress", cwd=tmp_path, env=env
    )
    assert quiet.code == 0 and "shows in `ps`" not in quiet.stderr


async def test_plan_with_a_key_checks_the_upload_repository(emulator: Any, tmp_path: Path) -> None:
    """`plan` with a key looks the upload repository up (without writing to it): missing is exit 2."""
    emu = await emulator(auto_create_repos=False)
    manifest = asset_manifest(tmp_path)
    missing = await run_cli(
        "plan", str(manifest), "--api-base", emu.base_url, "--api-key", emu.api_key, cwd=tmp_path
    )
    assert missing.code == 2 and "acme/campaign-refs does not exist" in missing.stderr
    emu.create_repo("acme", "campaign-refs")
    found = await run_cli(
        "plan", str(manifest), "--api-base", emu.base_url, "--api-key", emu.api_key, cwd=tmp_path
    )
    assert found.code == 0, found.stderr
    assert emu.counters.snapshot()["uploads"] == 0  # plan never writes


async def test_a_symlinked_run_directory_says_where_the_files_go(emulator: Any, tmp_path: Path) -> None:
    """`-o` through a symlink: the run says, in one line, the real place its files are written to."""
    emu = await emulator()
    (tmp_path / "disk").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "disk")
    manifest = write_manifest(tmp_path, count=1)
    result = await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert (
        f"out/e2e leads through a symlink: the files are written to {tmp_path / 'disk' / 'e2e'}"
        in result.stderr
    )
    assert (tmp_path / "disk" / "e2e" / "videos").is_dir()
