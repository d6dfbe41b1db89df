"""`batchgen run` end to end: the real CLI in a subprocess against the emulator on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import struct
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from batchgen.emulator import Emulator, FaultConfig
from tests.e2e.conftest import api_args, run_cli

MODEL = "kling-video-o3-pro-reference-to-video"


def write_manifest(
    root: Path,
    *,
    name: str = "e2e",
    count: int = 50,
    extra_jobs: list[dict[str, Any]] | None = None,
    prompt: str = "Clip number {n}, slow dolly shot",
    **top: Any,
) -> Path:
    manifest = {
        "version": 1,
        "name": name,
        "model": MODEL,
        "defaults": {"aspect_ratio": "16:9", "duration": 5},
        "jobs": [
            {"name": "clip", "prompt": prompt, "matrix": {"n": list(range(count))}},
            *(extra_jobs or []),
        ],
        "output": {"pattern": "{name}/{name}-{n}.mp4"},
        **top,
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def results(run_dir: Path, *, earlier: bool = False) -> list[dict[str, Any]]:
    """The rows of results.jsonl for the plan's jobs; `earlier`: also those after them, of jobs of an
    earlier manifest that made a generation (`planned` false)."""
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return [row for row in rows if earlier or row.get("planned", True)]


def assert_all_verified(run_dir: Path, emu: Emulator, expected: int) -> None:
    rows = results(run_dir)
    assert [r["state"] for r in rows] == ["done"] * expected
    for row in rows:
        video = run_dir / row["output_path"]
        sidecar = json.loads(video.with_suffix(".json").read_text())
        on_disk = hashlib.sha256(video.read_bytes()).hexdigest()
        assert on_disk == sidecar["sha256"] == row["sha256"] == emu.result_sha256(row["generation_id"])
        assert video.stat().st_size == row["size"]
    assert not list(run_dir.rglob("*.part"))


def enqueues(emu: Emulator) -> int:
    return sum(emu.counters.snapshot()["enqueued_by_body"].values())


def total_requests(emu: Emulator) -> int:
    return sum(emu.counters.snapshot()["requests"].values())


async def test_fifty_jobs_complete_verified_and_a_rerun_sends_nothing(emulator: Any, tmp_path: Path) -> None:
    """50 jobs finish with every file matching the emulator's sha256; a rerun reads the journal only."""
    emu = await emulator()
    manifest = write_manifest(tmp_path)
    first = await run_cli("run", str(manifest), "-o", "out", *api_args(emu, "-j", "8"), cwd=tmp_path)
    assert first.code == 0, first.stderr
    run_dir = tmp_path / "out" / "e2e"
    assert_all_verified(run_dir, emu, 50)
    assert enqueues(emu) == 50
    assert max(emu.counters.snapshot()["enqueued_by_body"].values()) == 1
    for name in ("manifest.yaml", "plan.json", "state.sqlite", "results.csv", "run.log"):
        assert (run_dir / name).is_file(), name

    before = total_requests(emu)
    second = await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert second.code == 0, second.stderr
    assert total_requests(emu) == before
    assert "50/50 done" in second.stderr


async def test_changing_one_job_submits_only_that_job(emulator: Any, tmp_path: Path) -> None:
    """Editing one job's prompt changes its key: only it is generated on the next run."""
    emu = await emulator()
    extra = [{"name": "hero", "prompt": "A red mug on marble", "vars": {"n": "x"}}]
    manifest = write_manifest(tmp_path, count=5, extra_jobs=extra)
    assert (await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)).code == 0
    assert enqueues(emu) == 6
    manifest = write_manifest(tmp_path, count=5, extra_jobs=[{**extra[0], "prompt": "A blue mug on marble"}])
    again = await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert again.code == 0, again.stderr
    assert enqueues(emu) == 7
    bodies = emu.counters.snapshot()["enqueued_by_body"]
    assert any("A blue mug" in body for body in bodies)


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"\x00\xff\x00\x00" * 1
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


async def test_a_local_reference_image_is_uploaded_once_and_reaches_the_model(
    emulator: Any, tmp_path: Path
) -> None:
    """Six jobs share one local image: one upload, and its URL is what the model fetched."""
    emu = await emulator()
    (tmp_path / "ref.png").write_bytes(tiny_png())
    manifest = write_manifest(
        tmp_path,
        count=6,
        prompt="@Image1 on a table, take {n}",
        assets={"mug": "ref.png"},
        upload={"namespace": "acme", "repo": "refs"},
        defaults={"aspect_ratio": "16:9", "duration": 5, "input_image": ["{asset:mug}"]},
    )
    result = await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert result.code == 0, result.stderr
    requests = emu.counters.snapshot()["requests"]
    uploads = sum(n for route, n in requests.items() if route.startswith("PUT "))
    assert uploads == 1
    fetched = [url for url in emu.fetched_references if "/acme/refs/" in url]
    assert fetched and all(url.endswith(".png") for url in fetched)
    sent = next(iter(emu.counters.snapshot()["enqueued_by_body"]))
    assert fetched[0] in sent


async def test_failed_generations_are_retried_within_the_retry_budget(emulator: Any, tmp_path: Path) -> None:
    """With 30% transient failures and 5 retries, all 20 jobs end done; failures cost extra attempts."""
    emu = await emulator(faults=FaultConfig(generation_failure_rate=0.3), seed=3)
    manifest = write_manifest(tmp_path, count=20)
    result = await run_cli("run", str(manifest), "-o", "out", *api_args(emu, "--retries", "5"), cwd=tmp_path)
    assert result.code == 0, result.stderr
    rows = results(tmp_path / "out" / "e2e")
    assert all(r["state"] == "done" for r in rows)
    assert enqueues(emu) > 20  # some were retried...
    assert max(r["attempts"] for r in rows) <= 6  # ...but never beyond the budget


async def test_a_stream_cut_every_second_loses_no_completion(emulator: Any, tmp_path: Path) -> None:
    """The event stream is cut every 0.3 s: every job still completes, each paid once."""
    emu = await emulator(faults=FaultConfig(sse_cut_every_seconds=0.3), time_scale=0.002)
    manifest = write_manifest(tmp_path, count=30)
    result = await run_cli("run", str(manifest), "-o", "out", *api_args(emu, "-j", "10"), cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert_all_verified(tmp_path / "out" / "e2e", emu, 30)
    assert enqueues(emu) == 30
    assert emu.counters.snapshot()["sse_connections"] > 2


async def test_exit_two_and_nothing_sent_for_a_bad_manifest(emulator: Any, tmp_path: Path) -> None:
    """An unknown template variable: exit 2, a message with file:line, nothing but a read of the model
    registry (the live description the plan is checked against), no run directory."""
    emu = await emulator()
    manifest = write_manifest(tmp_path, count=2, prompt="Clip {nope}")
    result = await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert result.code == 2
    assert "e2e.yaml:" in result.stderr and "nope" in result.stderr
    assert set(emu.counters.snapshot()["requests"]) <= {"GET /api/ai/models/{model_id}"}
    assert not (tmp_path / "out").exists()


def kill_after_enqueues(emu: Emulator, count: int) -> Callable[[asyncio.subprocess.Process], Awaitable[None]]:
    """An on_start hook that SIGKILLs the CLI as soon as the emulator answered its `count`-th enqueue."""
    answered = asyncio.Event()
    emu.counters.listeners.append(
        lambda event, _: (
            answered.set()
            if event == "enqueue_answered" and emu.counters.generations_enqueued == count
            else None
        )
    )

    async def kill(proc: asyncio.subprocess.Process) -> None:
        await answered.wait()
        proc.send_signal(signal.SIGKILL)

    return kill


async def test_cancel_stops_in_flight_generations_at_the_provider(emulator: Any, tmp_path: Path) -> None:
    """After a kill -9, `batchgen cancel` cancels every generation still rendering, even unjournaled ones."""
    emu = await emulator(time_scale=1.0)  # renders take minutes: they are surely in flight
    manifest = write_manifest(tmp_path, count=4)

    # The last answer may not be journaled when the kill lands: cancel must find it anyway.
    killed = await run_cli(
        "run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path, on_start=kill_after_enqueues(emu, 4)
    )
    assert killed.code == -signal.SIGKILL
    cancelled = await run_cli(
        "cancel", "out/e2e", "--api-base", emu.base_url, "--api-key", emu.api_key, cwd=tmp_path
    )
    assert cancelled.code == 0, cancelled.stderr
    assert "cancelled 4 in-flight generation(s)\n" in cancelled.stdout
    assert sorted(g.status for g in emu.generations()) == ["cancelled"] * 4
    status = await run_cli("status", "out/e2e", cwd=tmp_path)
    assert "cancelled 4" in status.stdout


async def test_cancel_keeps_generations_that_already_finished(emulator: Any, tmp_path: Path) -> None:
    """Generations that finished after a kill -9 are not marked cancelled: the rerun downloads them, 0 paid twice."""
    emu = await emulator(time_scale=0.02)
    manifest = write_manifest(tmp_path, count=3)
    await run_cli(
        "run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path, on_start=kill_after_enqueues(emu, 3)
    )
    async with asyncio.timeout(30):
        await emu.wait_idle()  # all three finished at the provider meanwhile
    cancelled = await run_cli(
        "cancel", "out/e2e", "--api-base", emu.base_url, "--api-key", emu.api_key, cwd=tmp_path
    )
    assert cancelled.code == 0, cancelled.stderr
    assert "cancelled 0 in-flight generation(s); 3 had already succeeded" in cancelled.stdout
    rerun = await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert rerun.code == 0, rerun.stderr
    assert emu.counters.snapshot()["generations_enqueued"] == 3
    assert_all_verified(tmp_path / "out" / "e2e", emu, 3)
