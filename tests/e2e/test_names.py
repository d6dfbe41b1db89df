"""Guarantees 70-71: every output a person reads names a job by what it is (`hero · mug · 9:16 · take 2`),
the one rule of batchgen.naming; programs keep the key, and `output_path` means the same everywhere.

One run per module (the real CLI against the emulator, half of the generations failing), then one
test per output: `status`, `status --json`, `run --json`, the run's warnings and run.log,
`results.*`, the report (and `batchgen report` on a run directory from before titles were kept).
The report's failure list and picks export, in a browser: tests/test_report_html.py.
"""

from __future__ import annotations

import asyncio
import csv
import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchgen.emulator import EmulatorConfig, FaultConfig, run_emulator
from tests.e2e.conftest import FAST, CliResult, api_args, run_cli
from tests.e2e.test_run import MODEL, results

TITLES = [
    *(
        f"hero · {product} · {ratio} · take {take}"
        for product in ("mug", "théière")
        for ratio in ("16:9", "9:16")
        for take in (1, 2)
    ),
    "teaser · mug",
    "teaser · théière",
]


@dataclass(frozen=True)
class Ran:
    run_dir: Path
    ran: CliResult  # `run --json`
    rows: list[dict[str, Any]]  # results.jsonl
    by_key: dict[str, dict[str, Any]]


def write_manifest(root: Path) -> Path:
    """The README's shape: a CSV of products (each with its own tagline), a job matrix of aspect
    ratios, two takes, a constant brand; and a second job with neither matrix nor takes."""
    (root / "products.csv").write_text(
        "product,tagline\nmug,Warm mornings and a long slow breakfast\nthéière,Le thé de l'après-midi\n",
        encoding="utf-8",
    )
    manifest = {
        "version": 1,
        "name": "names",
        "model": MODEL,
        "defaults": {"duration": 5},
        "vars": {"brand": "Meadow & Co."},
        "rows": "products.csv",
        "jobs": [
            {
                "name": "hero",
                "prompt": "{brand}: a {product}, {tagline}",
                "aspect_ratio": "{aspect_ratio}",
                "matrix": {"aspect_ratio": ["16:9", "9:16"]},
                "repeat": 2,
            },
            {"name": "teaser", "prompt": "A {product} turning", "aspect_ratio": "1:1"},
        ],
    }
    path = root / "names.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    """One `run --json` of the manifest, about half of its generations failing (no retries)."""
    root = tmp_path_factory.mktemp("names")
    manifest = write_manifest(root)

    async def run() -> CliResult:
        config = EmulatorConfig(**FAST, seed=3, faults=FaultConfig(generation_failure_rate=0.5))
        async with run_emulator(config) as emu:
            return await run_cli(
                "run",
                str(manifest),
                "-o",
                "out",
                "--json",
                *api_args(emu, "-j", "2", "--retries", "0"),
                cwd=root,
            )

    result = asyncio.run(run())
    assert result.code == 1, result.stderr
    run_dir = root / "out" / "names"
    rows = results(run_dir)
    states = {row["state"] for row in rows}
    assert states == {"done", "failed"}, states  # both kinds of job to name
    return Ran(run_dir, result, rows, {row["key"]: row for row in rows})


def failed(ran: Ran) -> list[dict[str, Any]]:
    return [row for row in ran.rows if row["state"] == "failed"]


async def test_results_csv_and_jsonl_have_a_title_column_beside_the_key(ran: Ran) -> None:
    """results.jsonl and results.csv: `title` right after `name`, the readable name of each job, in
    plan order; `key` whole; `output_path` relative to the run directory."""
    assert [row["title"] for row in ran.rows] == TITLES
    assert all(len(row["key"]) == 64 and row["output_path"].startswith("videos/") for row in ran.rows)
    with (ran.run_dir / "results.csv").open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        cells = list(reader)
    assert reader.fieldnames is not None and reader.fieldnames[2:4] == ["name", "title"]
    assert [row["title"] for row in cells] == TITLES
    assert [row["key"] for row in cells] == [row["key"] for row in ran.rows]


async def test_status_names_each_job_that_needs_a_look_by_its_readable_name(ran: Ran) -> None:
    """`batchgen status`: one line per failed job, `failed     hero · mug · 9:16 · take 2: <error>`."""
    status = await run_cli("status", str(ran.run_dir), cwd=ran.run_dir)
    assert status.code == 1
    problems = [line for line in status.stdout.splitlines() if line.startswith("  failed ")]
    assert problems == [f"  failed     {row['title']}: {row['error']}" for row in failed(ran)]
    assert not any(row["key"][:12] in status.stdout for row in ran.rows)  # no key in the way


async def test_status_json_gives_the_title_beside_the_key_and_the_same_output_path(ran: Ran) -> None:
    """`status --json`: `title` beside `name` and the whole `key`; `output_path` is results.csv's
    (relative to the run directory, `videos/` included) and a done job's file is there."""
    status = await run_cli("status", str(ran.run_dir), "--json", cwd=ran.run_dir)
    lines = [json.loads(line) for line in status.stdout.splitlines()]
    assert [(line["key"], line["title"]) for line in lines] == [(r["key"], r["title"]) for r in ran.rows]
    for line in lines:
        assert line["output_path"] == ran.by_key[line["key"]]["output_path"]
        if line["state"] == "done":
            assert (ran.run_dir / line["output_path"]).is_file()


async def test_run_json_failures_carry_title_key_and_the_same_output_path(ran: Ran) -> None:
    """`run --json`: each failure has `title` beside `name` and `key`, and results.csv's `output_path`."""
    summary = json.loads(ran.ran.stdout)
    expected = [(r["key"], r["name"], r["title"], r["output_path"]) for r in failed(ran)]
    got = [(f["key"], f["name"], f["title"], f["output_path"]) for f in summary["failures"]]
    assert got == expected


async def test_the_runs_warnings_name_jobs_and_run_log_keeps_their_keys(ran: Ran) -> None:
    """Each failure's warning on stderr names the job by its readable name, not its key; the same
    line in run.log carries the key as its `key` field, for programs."""
    for row in failed(ran):
        assert f"batchgen: warning: job {row['title']} failed (" in ran.ran.stderr
        assert row["key"][:12] not in ran.ran.stderr
    logged = [json.loads(line) for line in (ran.run_dir / "run.log").read_text("utf-8").splitlines()]
    warned = {line["key"]: line["message"] for line in logged if line["message"].startswith("job ")}
    assert set(warned) == {row["key"] for row in failed(ran)}
    assert all(warned[key].startswith(f"job {ran.by_key[key]['title']} failed") for key in warned)


def report_data(run_dir: Path) -> dict[str, Any]:
    html = (run_dir / "report.html").read_text("utf-8")
    data = html.split('<script type="application/json" id="batchgen-data">', 1)[1].split("</script>", 1)[0]
    parsed: dict[str, Any] = json.loads(data)
    return parsed


async def test_the_reports_cards_are_titled_by_readable_names_and_batchgen_report_keeps_them(
    ran: Ran,
) -> None:
    """report.html's cards carry each job's readable name (its heading, its failure-list entry, the
    picks export's `title`) and key; `batchgen report` writes the same again, offline."""
    cards = report_data(ran.run_dir)["cards"]
    assert [(c["key"], c["title"]) for c in cards] == [(r["key"], r["title"]) for r in ran.rows]
    again = await run_cli("report", str(ran.run_dir), cwd=ran.run_dir)
    assert again.code == 0, again.stderr
    assert [c["title"] for c in report_data(ran.run_dir)["cards"]] == TITLES


async def test_a_run_directory_from_before_titles_still_names_its_jobs(ran: Ran, tmp_path: Path) -> None:
    """A run directory whose plan.json and journal have no titles (an older batchgen's): `batchgen
    report` names the jobs by the same rule from plan.json; `status` by name and key prefix."""
    old = tmp_path / "old"
    shutil.copytree(ran.run_dir, old)
    plan = json.loads((old / "plan.json").read_text("utf-8"))
    for job in plan["jobs"]:
        del job["title"]
    (old / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    with sqlite3.connect(old / "state.sqlite") as db:
        db.execute("UPDATE jobs SET title = NULL")
    report = await run_cli("report", str(old), cwd=tmp_path)
    assert report.code == 0, report.stderr
    assert [row["title"] for row in results(old)] == TITLES
    assert [c["title"] for c in report_data(old)["cards"]] == TITLES
    status = await run_cli("status", str(old), cwd=tmp_path)
    problems = [line for line in status.stdout.splitlines() if line.startswith("  failed ")]
    assert problems == [
        f"  failed     {row['name']} · {row['key'][:6]}: {row['error']}" for row in failed(ran)
    ]
