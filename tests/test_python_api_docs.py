"""docs/python.md's first example, run as written in a fresh directory: it must work and write the
same run directory as `batchgen run` does."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import clean_env

REPO = Path(__file__).resolve().parents[1]


def test_the_python_example_runs_and_writes_what_the_cli_writes(tmp_path: Path) -> None:
    """run_manifest("jobs/demo.yaml", sandbox=True) from a fresh folder: every job done, and plan.json,
    run.log, results files, videos and sidecars where the CLI puts them."""
    example = re.search(r"```python\n(.*?)```", (REPO / "docs" / "python.md").read_text(), re.DOTALL)
    assert example is not None
    shutil.copytree(REPO / "jobs", tmp_path / "jobs")
    done = subprocess.run(
        [sys.executable, "-c", example.group(1)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "{'done': 9}" in done.stdout
    run_dir = tmp_path / "outputs" / "demo.sandbox"
    for name in ("manifest.yaml", "plan.json", "run.log", "results.csv", "results.jsonl", "state.sqlite"):
        assert (run_dir / name).is_file(), name
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 9 and all(row["state"] == "done" for row in rows)
    for row in rows:
        video = run_dir / row["output_path"]
        assert (
            video.is_file() and json.loads(video.with_suffix(".json").read_text())["sha256"] == row["sha256"]
        )
    lines = [json.loads(line) for line in (run_dir / "run.log").read_text().splitlines()]
    assert lines and all(
        line["level"] in ("info", "warning", "error") for line in lines
    )  # per-step: DEBUG, -v only
