"""Guarantee 8: when the disk refuses (not writable, full), the run stops with a clear error and a
non-zero exit, the journal stays intact, and once the disk is fixed a rerun finishes without paying
for anything twice.

What is simulated, exactly:
- not writable: the output directory path goes through a regular file (`-o afile/out`), and, mid-run,
  the run's `videos/` directory is a read-only bind mount (EROFS; chmod would not stop root);
- disk full: the output directory is a 1 MiB tmpfs (ENOSPC), later remounted at 64 MiB.
The mount-based cases need root and mount(8); they are skipped, saying so, where mounting is refused.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import (
    Harness,
    assert_complete,
    journal_integrity,
    journal_jobs,
    total_requests,
    write_manifest,
)

RESULT_BYTES = 256 * 1024


def clear_error(stderr: str, reason: str) -> bool:
    """One `batchgen: error:` line giving the reason, and no traceback."""
    return "Traceback" not in stderr and any(
        line.startswith("batchgen: error:") and reason in line for line in stderr.splitlines()
    )


class Mounts:
    """mount(8) calls, undone at teardown."""

    def __init__(self) -> None:
        self.mounted: list[Path] = []

    def run(self, *args: str) -> None:
        done = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot simulate the disk with mount ({done.stderr.strip()}): needs root")

    def tmpfs(self, where: Path, size: str) -> None:
        where.mkdir(parents=True, exist_ok=True)
        self.run("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
        self.mounted.append(where)

    def read_only_bind(self, where: Path) -> None:
        where.mkdir(parents=True, exist_ok=True)
        self.run("--bind", str(where), str(where))
        self.mounted.append(where)
        self.run("-o", "remount,bind,ro", str(where))


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    m = Mounts()
    yield m
    for where in reversed(m.mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30, check=False)


async def test_output_dir_through_a_regular_file_exit_1_nothing_submitted_then_rerun_succeeds(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """`-o afile/out` where afile is a file: a clear error naming the directory, exit 1, 0 enqueues;
    once the file is gone the same command finishes 10/10."""
    emu = await start_emulator(seed=13)
    manifest = write_manifest(tmp_path, count=10)
    (tmp_path / "afile").write_text("not a directory")
    first = await harness.run(emu, manifest, out="afile/out")
    assert first.code == 1
    assert clear_error(first.stderr, "cannot write to the run directory afile/out/e2e")
    assert emu.counters.generations_enqueued == 0
    (tmp_path / "afile").unlink()
    second = await harness.run(emu, manifest, out="afile/out")
    assert second.code == 0, second.stderr
    assert_complete(tmp_path / "afile" / "out" / "e2e", emu, 10)


async def test_read_only_videos_dir_exit_1_journal_intact_then_rerun_0_duplicates(
    start_emulator: Any, harness: Harness, tmp_path: Path, mounts: Mounts
) -> None:
    """videos/ is mounted read-only: the first result cannot be written, the run exits 1 naming the
    path, the journal passes integrity_check; after remounting read-write the rerun ends 20/20 with
    exactly 20 generations (nothing paid twice)."""
    emu = await start_emulator(seed=14, result_size_bytes=RESULT_BYTES)
    manifest = write_manifest(tmp_path, count=20)
    run_dir = tmp_path / "out" / "e2e"
    mounts.read_only_bind(run_dir / "videos")
    first = await harness.run(emu, manifest, "-j", "8")
    assert first.code == 1, first.stderr
    assert clear_error(first.stderr, "Read-only file system") and "videos" in first.stderr
    assert journal_integrity(run_dir) == "ok"
    states = [row["state"] for row in journal_jobs(run_dir).values()]
    assert "done" not in states and "succeeded" in states  # paid for, waiting for its download
    mounts.run("-o", "remount,bind,rw", str(run_dir / "videos"))
    second = await harness.run(emu, manifest, "-j", "8")
    assert second.code == 0, second.stderr
    assert_complete(run_dir, emu, 20)


async def test_disk_full_exit_1_journal_intact_then_rerun_after_growing_it_0_duplicates(
    start_emulator: Any, harness: Harness, tmp_path: Path, mounts: Mounts
) -> None:
    """The output directory is a 1 MiB tmpfs and 20 results need 5 MiB: ENOSPC stops the run (exit 1,
    clear message), the journal passes integrity_check and every job it calls done is on disk whole;
    after growing the file system the rerun ends 20/20 with exactly 20 generations."""
    emu = await start_emulator(seed=15, result_size_bytes=RESULT_BYTES)
    manifest = write_manifest(tmp_path, count=20)
    out = tmp_path / "out"
    mounts.tmpfs(out, "1m")
    run_dir = out / "e2e"
    first = await harness.run(emu, manifest, "-j", "8")
    assert first.code == 1, first.stderr
    # which write meets the full disk first depends on timing: a result's (the OS's words) or the
    # journal's (SQLite's words); either way one clear line says so
    full = ("No space left on device", "database or disk is full")
    assert any(clear_error(first.stderr, words) for words in full), first.stderr
    assert journal_integrity(run_dir) == "ok"
    for row in journal_jobs(run_dir).values():
        if row["state"] == "done":
            assert (run_dir / "videos" / row["output_path"]).stat().st_size == row["size"]
    before = total_requests(emu)
    mounts.run("-o", "remount,size=64m", str(out))
    second = await harness.run(emu, manifest, "-j", "8")
    assert second.code == 0, second.stderr
    assert total_requests(emu) > before
    assert_complete(run_dir, emu, 20)
