"""Guarantee 9: bad input is refused before anything is sent or written.

Every manifest of the bad corpus (`tests/plan/bad/*.yaml`) and a few bad flags go through
`batchgen run` with a live emulator as the API: each must exit 2 with its message, the emulator
must count 0 requests (the single exception: `model-unknown` names a model the package does not
ship, which is looked up in the registry, read-only, before it is refused), and no file may appear (no output directory, nothing in the working
directory, the corpus untouched). The cases run through the CLI's `main` in one subprocess
(`corpus_driver.py`); three of them also run as separate `python -m batchgen` processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from batchgen.emulator import Emulator
from tests.delivery.test_target import BAD_FIELDS, manifest_with
from tests.faults.conftest import SECRET_KEY, Harness, write_manifest

BAD = Path(__file__).resolve().parents[1] / "plan" / "bad"
DRIVER = Path(__file__).with_name("corpus_driver.py")
CASES = sorted(BAD.glob("*.yaml"))
UNSHIPPED_MODEL = "kling-video-o3-pro-reference-to-vide"  # model-unknown.yaml's typo


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def api(emu: Emulator, out: Path) -> list[str]:
    return ["-o", str(out), "--api-base", emu.base_url, "--api-key", SECRET_KEY, "--no-progress"]


async def drive(cases: list[list[str]], cwd: Path) -> list[dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(DRIVER),
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate(json.dumps(cases).encode())
    assert proc.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines()]


async def test_every_bad_manifest_and_flag_exit_2_0_requests_but_1_model_lookup_nothing_written(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """The whole bad corpus (90+ manifests) and 6 bad flags through `batchgen run`: every one exits
    2 with its message; the emulator counts 0 requests except 1 registry read (of the one unshipped
    model name); no file is written anywhere."""
    emu = await start_emulator()
    cwd, out = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    good = write_manifest(tmp_path, name="good", count=2)
    corpus_before = tree(BAD)
    bad_flags = [
        ["-j", "0"],
        ["--budget", "lots"],
        ["--upload-repo", "no-slash"],
        ["--stream-idle-timeout", "-1"],
        ["--retries", "-3"],
    ]
    cases = [["run", str(case), *api(emu, out)] for case in CASES]
    cases += [["run", str(good), *api(emu, out), *flags] for flags in bad_flags]
    cases.append(["run", str(good), "-o", str(out), "--api-base", emu.base_url, "--no-progress"])  # no key
    answers = await drive(cases, cwd)
    harness.outputs.extend(_as_results(answers))

    assert len(answers) == len(cases) >= 90
    wrong_code = [(a["argv"][1], a["code"]) for a in answers if a["code"] != 2]
    assert wrong_code == []
    for case, answer in zip(CASES, answers, strict=False):
        stderr = answer["stderr"].replace(str(BAD) + os.sep, "")
        expected = (BAD / f"{case.stem}.expected").read_text("utf-8").strip()
        assert f"batchgen: error: {expected}" in stderr, case.name
    assert all("Traceback" not in a["stderr"] and "batchgen: error:" in a["stderr"] for a in answers)
    # The only requests are reads of the model registry (free, no side effect): with a key, every
    # model a manifest names is checked against its live description before the plan is accepted.
    assert set(emu.counters.requests) == {"GET /api/ai/models/{model_id}"}
    assert f"/api/ai/models/{UNSHIPPED_MODEL}" in {r.path for r in emu.counters.request_log or []}
    assert not out.exists() and list(cwd.iterdir()) == []  # nothing written
    assert tree(BAD) == corpus_before


async def test_bad_manifest_in_separate_processes_exit_2_0_requests(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """Three corpus cases (a YAML error, a template error, a model rule) as real `python -m batchgen
    run` processes: exit 2, nothing but model-registry reads, no output directory."""
    emu = await start_emulator()
    for name in ("yaml-tab", "template-unknown-var", "kling-prompt-too-long"):
        result = await harness.cli("run", str(BAD / f"{name}.yaml"), *api(emu, tmp_path / "out"))
        assert result.code == 2, (name, result.stderr)
        assert result.stderr.startswith("batchgen: error: "), result.stderr
    assert set(emu.counters.snapshot()["requests"]) <= {"GET /api/ai/models/{model_id}"}
    assert not (tmp_path / "out").exists()


def _as_results(answers: list[dict[str, Any]]) -> list[Any]:
    from tests.e2e.conftest import CliResult

    return [
        CliResult(int(a["code"]) if isinstance(a["code"], int) else 1, a["stdout"], a["stderr"])
        for a in answers
    ]


async def test_unsafe_repository_names_branches_and_paths_exit_2_naming_where_with_0_requests(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """Each bad `deliver:`/`upload:` name, branch or path (a manifest each: `..`, `.`, `x/..`,
    `..%2f..%2fx`, U+202E, ...) through `batchgen run` and `batchgen plan` with a key, and each bad
    `--deliver` / `--upload-repo` through `batchgen run`: exit 2, the message names the file, line,
    column and field (or the flag), and the emulator sees no request at all; nothing is written."""
    emu = await start_emulator()
    cwd, out = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    manifests = tmp_path / "manifests"
    cases: list[list[str]] = []
    expected: list[str] = []
    for i, (section, key, value, _) in enumerate(BAD_FIELDS):  # messages: test_target.py
        folder = manifests / str(i)
        folder.mkdir(parents=True)
        path, line, column = manifest_with(folder, section, key, value)
        where = f"{path}:{line}:{column}: {section}.{key}: "
        cases += [["run", str(path), *api(emu, out)], ["plan", str(path), *api(emu, out)[:6]]]
        expected += [f"batchgen: error: {where}", f"batchgen: error: {where}"]
    good = write_manifest(tmp_path, name="good", count=1)
    bad_flags = [
        (["--deliver", "meadow/.."], "--deliver: the repository 'meadow/..' has the repository name '..'"),
        (["--deliver", "../campaigns"], "--deliver: the repository '../campaigns' has the namespace '..'"),
        (["--deliver", "meadow/c"], "--deliver: the repository 'meadow/c' has the repository name 'c'"),
        (["--deliver", "meadow/campaigns@.."], "--deliver: the branch '..' has a '..' part"),
        (["--deliver", "meadow/campaigns@x/.."], "--deliver: the branch 'x/..' has a '..' part"),
        (["--deliver", "meadow/campaigns@-x"], "--deliver: the branch '-x' has a part starting with '-'"),
        (["--deliver", "meadow/campaigns@x.lock"], "--deliver: the branch 'x.lock' has a part ending"),
        (["--deliver", "meadow/campaigns@a b"], "--deliver: the branch 'a b' contains U+0020 (SPACE)"),
        (["--deliver", "meadow/campaigns@%"], "--deliver: the branch '%' contains '%'"),
        (["--deliver", "meadow/campaigns@a\u202eb"], "--deliver: the branch 'a\\u202eb' contains U+202E"),
        (
            ["--deliver", "meadow/campaigns:..%2f..%2fx"],
            "--deliver: the delivery path '..%2f..%2fx' contains '%'",
        ),
        (
            ["--deliver", "meadow/campaigns:a\u202eb"],
            "--deliver: the delivery path 'a\\u202eb' contains U+202E",
        ),
        (["--deliver", "meadow/campaigns:x/.."], "--deliver: the delivery path 'x/..' has a '..' segment"),
        (
            ["--upload-repo", "acme/.."],
            "--upload-repo: upload repository 'acme/..' has the repository name '..'",
        ),
        (["--upload-repo", "acme/assets@x/.."], "--upload-repo: upload branch 'x/..' has a '..' part"),
    ]
    for flags, says in bad_flags:
        cases.append(["run", str(good), *api(emu, out), *flags])
        expected.append(f"batchgen: error: {says}")
    answers = await drive(cases, cwd)
    harness.outputs.extend(_as_results(answers))

    assert len(answers) == len(cases) == 2 * len(BAD_FIELDS) + len(bad_flags)
    for answer, wanted in zip(answers, expected, strict=True):
        assert answer["code"] == 2, answer
        assert wanted in answer["stderr"], (wanted, answer["stderr"])
        assert "Traceback" not in answer["stderr"]
    assert emu.counters.request_log == [] and sum(emu.counters.requests.values()) == 0  # not one request
    assert not out.exists() and list(cwd.iterdir()) == []  # nothing written
