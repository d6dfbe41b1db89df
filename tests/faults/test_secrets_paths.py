"""Guarantee 10: the API key is written nowhere, and nothing is written outside the run directory.

The key check itself runs after *every* fault test (the autouse `harness` fixture in conftest.py):
every file under the test's directory, SQLite journal and WAL included, and every captured stdout
and stderr. The tests here add the noisiest run there is (every fault, verbose logging, a reference
image upload), and try to make the runner write outside its run directory: unsafe manifest names and
output patterns, variable values with `..` and absolute paths, generation ids from the server with
`..` and absolute paths, and symlinks planted in the run directory.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchgen.emulator import FaultConfig
from tests.e2e.conftest import clean_env
from tests.e2e.test_run import MODEL, tiny_png
from tests.faults.conftest import SECRET_KEY, Harness, assert_complete, secret_leaks, write_manifest


def files_outside(root: Path, run_dir: Path, before: set[Path]) -> list[str]:
    """Files under `root` that are new since `before` and not inside `run_dir`."""
    inside = run_dir.resolve()
    return sorted(
        str(p)
        for p in root.rglob("*")
        if p not in before and not p.resolve().is_relative_to(inside) and p.resolve() != inside
    )


@pytest.mark.parametrize("key_via", ["--api-key", "OXEN_API_KEY"])
async def test_api_key_in_0_files_and_0_outputs_of_a_verbose_run_with_every_fault(
    start_emulator: Any, harness: Harness, tmp_path: Path, key_via: str
) -> None:
    """A verbose run through 429s, 5xx, cut answers, stream cuts, failed generations, truncated
    downloads and an image upload (key given by flag, or by environment variable): the key is in
    0 files and 0 outputs, and 0 result downloads carried an Authorization header."""
    faults = FaultConfig(
        rate_limit_rate=0.03,
        rate_limit_retry_after_seconds=1,
        server_error_rate=0.1,
        enqueue_cut_rate=0.1,
        sse_cut_every_seconds=0.7,
        generation_failure_rate=0.2,
        download_truncate_rate=0.2,
    )
    emu = await start_emulator(seed=16, time_scale=0.001, faults=faults)
    (tmp_path / "ref.png").write_bytes(tiny_png())
    manifest = write_manifest(
        tmp_path,
        count=20,
        prompt="@Image1 on a table, take {n}",
        assets={"mug": "ref.png"},
        upload={"namespace": "acme", "repo": "refs"},
        defaults={"aspect_ratio": "16:9", "duration": 5, "input_image": ["{asset:mug}"]},
    )
    if key_via == "--api-key":
        result = await harness.run(emu, manifest, "-v", "--retries", "5")
    else:
        args = [
            "run",
            str(manifest),
            "-o",
            "out",
            "--api-base",
            emu.base_url,
            "--no-progress",
            "-v",
            "--retries",
            "5",
            "--stream-idle-timeout",
            "3",
            "--request-timeout",
            "5",
        ]
        result = await harness.cli(*args, env=clean_env(OXEN_API_KEY=SECRET_KEY))
    assert result.code == 0, result.stderr
    run_dir = tmp_path / "out" / "e2e"
    status = await harness.cli("status", str(run_dir))
    assert status.code == 0
    assert emu.counters.faults.total() >= 10 and emu.counters.uploads == 1
    assert secret_leaks(tmp_path, harness.outputs) == []
    log = emu.counters.request_log or []
    downloads = [r for r in log if r.route.startswith("GET /api/repos/{namespace}/{repo}/files/")]
    assert downloads and not any(r.authorized for r in downloads)
    assert all(r.authorized for r in log if r.route.startswith(("POST /api/ai/", "GET /api/events")))


def manifest_text(name: str, pattern: str) -> str:
    return yaml.safe_dump(
        {
            "version": 1,
            "name": name,
            "model": MODEL,
            "defaults": {"aspect_ratio": "16:9", "duration": 5},
            "jobs": [{"name": "clip", "prompt": "Clip {n}", "matrix": {"n": [0, 1]}}],
            "output": {"pattern": pattern},
        }
    )


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("..", "{name}-{n}.mp4"),
        ("../escape", "{name}-{n}.mp4"),
        ("/tmp/batchgen-escape", "{name}-{n}.mp4"),
        ("ok", "../escape/{name}-{n}.mp4"),
        ("ok", "/tmp/batchgen-escape/{name}-{n}.mp4"),
        ("ok", "a/../../{name}-{n}.mp4"),
    ],
)
async def test_unsafe_run_names_and_output_patterns_exit_2_0_files_written(
    start_emulator: Any, harness: Harness, tmp_path: Path, name: str, pattern: str
) -> None:
    """A manifest name or output pattern with `..` or an absolute path: exit 2, no request but registry reads, 0 files."""
    emu = await start_emulator()
    manifest = tmp_path / "m.yaml"
    manifest.write_text(manifest_text(name, pattern))
    before = set(tmp_path.rglob("*"))
    result = await harness.run(emu, manifest, out="sub/out")
    assert result.code == 2, result.stderr
    assert set(tmp_path.rglob("*")) == before
    assert not Path("/tmp/batchgen-escape").exists()
    assert set(emu.counters.requests) <= {"GET /api/ai/models/{model_id}"}  # reads of the registry only


async def test_var_values_with_dotdot_and_absolute_paths_land_inside_videos_4_of_4(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """Matrix values `../../x`, `/abs/x`, `..` and `a/../../b` used in the output pattern: all 4 files
    are written inside the run's videos/ directory, none outside."""
    emu = await start_emulator()
    values = ["../../escape", f"{tmp_path}/abs-escape", "..", "a/../../b"]
    manifest = write_manifest(tmp_path, count=1, prompt="Clip {where} {n}")
    data = yaml.safe_load(manifest.read_text())
    data["jobs"][0]["matrix"] = {"where": values}
    data["jobs"][0]["vars"] = {"n": 0}
    data["output"] = {"pattern": "{where}/{name}-{where}.mp4"}
    manifest.write_text(yaml.safe_dump(data))
    before = set(tmp_path.rglob("*"))
    result = await harness.run(emu, manifest)
    assert result.code == 0, result.stderr
    run_dir = tmp_path / "out" / "e2e"
    assert len(list((run_dir / "videos").rglob("*.mp4"))) == 4
    assert files_outside(tmp_path, run_dir, before) == [str(tmp_path / "out")]


async def test_server_generation_ids_with_dotdot_and_absolute_paths_write_0_files_outside(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """The server names its generations `../../../escape-N` and `<tmp>/abs-N` (they appear in result
    URLs, events and rows): 6/6 done, every file inside the run directory, none at those names."""
    emu = await start_emulator(faults=FaultConfig(sse_cut_after_events=2))  # reconciles use the ids too
    counter = itertools.count()

    def hostile_id() -> str:
        n = next(counter)
        return f"../../../escape-{n}" if n % 2 else f"{tmp_path}/abs-{n}"

    emu.state._new_id = hostile_id  # type: ignore[method-assign]
    manifest = write_manifest(tmp_path, count=6)
    before = set(tmp_path.rglob("*"))
    result = await harness.run(emu, manifest)
    assert result.code == 0, result.stderr
    run_dir = tmp_path / "out" / "e2e"
    assert_complete(run_dir, emu, 6)
    assert files_outside(tmp_path, run_dir, before) == [str(tmp_path / "out")]
    assert not list(tmp_path.parent.glob("escape-*")) and not list(tmp_path.glob("abs-*"))


def plant(run_dir: Path, outside: Path, where: str) -> None:
    """A symlink at `where` (relative to the run directory) pointing into `outside`."""
    link = run_dir / where
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside if where in ("videos", "videos/clip") else outside / "target")


@pytest.mark.parametrize(
    "where",
    [
        "videos",
        "videos/clip",
        "videos/clip/clip-1.mp4",
        "videos/clip/clip-1.mp4.part",
        "videos/clip/clip-1.json",
    ],
)
async def test_a_symlink_planted_in_the_run_dir_gets_0_bytes_written_outside(
    start_emulator: Any, harness: Harness, tmp_path: Path, where: str
) -> None:
    """A symlink at videos/, a subdirectory, a final file, its .part or its sidecar, pointing out of
    the run directory: 0 files are written through it."""
    emu = await start_emulator()
    manifest = write_manifest(tmp_path, count=3)
    outside = tmp_path / "outside"
    outside.mkdir()
    plant(tmp_path / "out" / "e2e", outside, where)
    await harness.run(emu, manifest)
    assert list(outside.rglob("*")) == []


@pytest.mark.parametrize(
    "where", ["videos", "videos/clip", "videos/clip/clip-1.mp4", "videos/clip/clip-1.mp4.part"]
)
async def test_a_symlink_leading_out_is_refused_exit_1_and_the_reason_is_shown(
    start_emulator: Any, harness: Harness, tmp_path: Path, where: str
) -> None:
    """A symlink at videos/, a result's directory, its final path or its .part that leads out of the run directory:
    exit 1 without a traceback, the refusal (naming the symlink) is on stderr or in `batchgen status`,
    and once the link is removed a rerun finishes 3/3 without paying again."""
    emu = await start_emulator()
    manifest = write_manifest(tmp_path, count=3)
    outside = tmp_path / "outside"
    outside.mkdir()
    run_dir = tmp_path / "out" / "e2e"
    plant(run_dir, outside, where)
    result = await harness.run(emu, manifest)
    assert result.code == 1
    assert "Traceback" not in result.stderr
    status = await harness.cli("status", str(run_dir))
    assert "symlink" in result.stderr + status.stdout, (result.stderr, status.stdout)
    (run_dir / where).unlink()
    again = await harness.run(emu, manifest)
    assert again.code == 0, again.stderr
    assert_complete(run_dir, emu, 3)
    assert list(outside.rglob("*")) == []
