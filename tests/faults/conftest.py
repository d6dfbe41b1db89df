"""Fault-suite harness: the e2e emulator fixture with a distinctive API key, the real CLI in a
subprocess, and the checks every fault test shares.

After every test, `harness` checks that the API key appears in no file under the test's directory
(run directories, journals with their WAL, logs, sidecars) and in no captured stdout/stderr.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchgen.emulator import Emulator
from batchgen.emulator.counters import LoggedRequest
from batchgen.emulator.media import ResultBlob
from tests.e2e.conftest import CliResult, api_args, emulator, run_cli  # noqa: F401  (emulator: a fixture)
from tests.e2e.test_run import assert_all_verified, results, write_manifest

__all__ = ["SECRET_KEY", "Harness", "assert_complete", "journal_jobs", "results", "write_manifest"]

SECRET_KEY = "sk-test-SECRET-faults-3f9a1c7e5b2d4a60"
"""The key every fault test's emulator accepts: distinctive, so a leak is found by plain search."""

EmulatorFactory = Callable[..., Awaitable[Emulator]]


@pytest.fixture
async def start_emulator(emulator: EmulatorFactory) -> AsyncIterator[EmulatorFactory]:  # noqa: F811
    """`await start_emulator(**config)`: an emulator on 127.0.0.1 with SECRET_KEY and request logging on."""

    async def start(**overrides: Any) -> Emulator:
        emu = await emulator(**{"api_key": SECRET_KEY, **overrides})
        emu.counters.request_log = []
        return emu

    yield start


@dataclass
class Harness:
    """Runs `python -m batchgen` in `root` and keeps every output for the secrets check."""

    root: Path
    outputs: list[CliResult] = field(default_factory=list)

    async def cli(
        self,
        *args: str,
        limit_s: float = 60,
        env: dict[str, str] | None = None,
        on_start: Callable[[asyncio.subprocess.Process], Awaitable[None]] | None = None,
    ) -> CliResult:
        result = await run_cli(*args, cwd=self.root, env=env, limit_s=limit_s, on_start=on_start)
        self.outputs.append(result)
        return result

    async def run(
        self,
        emu: Emulator,
        manifest: Path,
        *flags: str,
        out: str | Path = "out",
        limit_s: float = 60,
        env: dict[str, str] | None = None,
        on_start: Callable[[asyncio.subprocess.Process], Awaitable[None]] | None = None,
    ) -> CliResult:
        """`batchgen run MANIFEST -o OUT` against `emu` (key on the command line, short timeouts)."""
        return await self.cli(
            "run",
            str(manifest),
            "-o",
            str(out),
            *api_args(emu, *flags),
            limit_s=limit_s,
            env=env,
            on_start=on_start,
        )


def secret_leaks(root: Path, outputs: list[CliResult], secret: str = SECRET_KEY) -> list[str]:
    """Every file under `root` (symlinks not followed) and every captured output holding `secret`."""
    needle = secret.encode()
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
            found.append(str(path.relative_to(root)))
    for i, out in enumerate(outputs):
        if secret in out.stdout or secret in out.stderr:
            found.append(f"output of CLI call #{i + 1}")
    return found


@pytest.fixture(autouse=True)
def harness(tmp_path: Path) -> Iterator[Harness]:
    """The CLI runner of one test; on teardown, the key must be in no file and no output (guarantee 10)."""
    h = Harness(tmp_path)
    yield h
    leaks = secret_leaks(tmp_path, h.outputs)
    assert leaks == [], f"the API key leaked into: {leaks}"


# -- shared checks ----------------------------------------------------------------------------------


def replica_manifest(root: Path, *, prompts: int, replicas: int) -> Path:
    """`prompts` jobs each repeated `replicas` times: replicas send byte-identical requests, so only
    the journal tells their generations apart (the hard case for reconciling a lost answer)."""
    manifest = write_manifest(root, count=prompts, prompt="Same shot {n}")
    data = yaml.safe_load(manifest.read_text())
    data["jobs"][0]["repeat"] = replicas
    data["output"] = {"pattern": "{name}/{name}-{n}-{replica}.mp4"}
    manifest.write_text(yaml.safe_dump(data))
    return manifest


def journal_jobs(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The journal's `jobs` table (key -> row), read with plain sqlite3 after the runner exited."""
    conn = sqlite3.connect(run_dir / "state.sqlite")
    try:
        conn.row_factory = sqlite3.Row
        return {row["key"]: dict(row) for row in conn.execute("SELECT * FROM jobs")}
    finally:
        conn.close()


def journal_integrity(run_dir: Path) -> str:
    conn = sqlite3.connect(run_dir / "state.sqlite")
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def paid(emu: Emulator) -> int:
    """Generations that succeeded, i.e. were paid for."""
    return sum(1 for g in emu.generations() if g.status == "succeeded")


def assert_complete(run_dir: Path, emu: Emulator, jobs: int, *, enqueued: int | None = None) -> None:
    """All `jobs` done once, each file verified against the emulator, nothing partial left.

    `enqueued` (default: `jobs`) is the exact number of generations the emulator must have created.
    """
    assert_all_verified(run_dir, emu, jobs)  # states, sidecar sha256 == results == emulator, sizes, no .part
    rows = results(run_dir)
    for row in rows:  # the bytes on disk themselves, not just what the journal says about them
        digest = hashlib.sha256((run_dir / row["output_path"]).read_bytes()).hexdigest()
        assert digest == emu.result_sha256(row["generation_id"]), row["output_path"]
    assert len({r["key"] for r in rows}) == jobs
    assert len({r["generation_id"] for r in rows}) == jobs, "two jobs claim one generation"
    assert emu.counters.generations_enqueued == (jobs if enqueued is None else enqueued)
    assert paid(emu) == jobs  # one paid generation per job: 0 paid twice
    videos = {p.relative_to(run_dir).as_posix() for p in (run_dir / "videos").rglob("*.mp4")}
    assert videos == {r["output_path"] for r in rows}, "stray or missing files at final paths"
    assert not [p for p in run_dir.rglob("*") if p.name.endswith((".part", ".tmp"))]


def api_requests(emu: Emulator) -> list[LoggedRequest]:
    """Logged requests to API routes (the ones subject to 429/5xx), in arrival order."""
    log = emu.counters.request_log or []
    return [r for r in log if r.route.split(" ", 1)[1].startswith(("/api/ai/", "/api/events"))]


def total_requests(emu: Emulator) -> int:
    return sum(emu.counters.requests.values())


class WrappedBlob:
    """A result blob that behaves like `blob`; subclasses change what `iter_range` serves."""

    def __init__(self, blob: ResultBlob) -> None:
        self._blob = blob
        self.content_type, self.extension = blob.content_type, blob.extension

    @property
    def size(self) -> int:
        return self._blob.size

    @property
    def sha256(self) -> str:
        return self._blob.sha256
