"""results.csv and results.jsonl: every column a person needs, and the CSV never lets a server's text run
as a spreadsheet formula."""

from __future__ import annotations

import csv
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from batchgen.isotime import iso_utc
from batchgen.journal.spend import journal_spend
from batchgen.journal.store import Journal, PlanRow
from batchgen.results.report import (
    FIELDS,
    PlanEntry,
    earlier_rows,
    plan_entries,
    result_columns,
    result_rows,
    write_results,
)
from batchgen.results.review import write_outputs_unless_current
from batchgen.states import JobState


def row(**values: Any) -> dict[str, Any]:
    """A results row with every field, `values` overriding the defaults."""
    base: dict[str, Any] = dict.fromkeys(FIELDS)
    base.update(index=0, key="ab" * 32, name="hero", replica=1, model="m", state="failed", attempts=1)
    base.update(values)
    return base


@pytest.mark.parametrize(
    "text",
    [
        '=HYPERLINK("http://evil.test","click")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1:A9)",
        "\t=1+1",
        "\r=1+1",
    ],
)
def test_server_text_that_looks_like_a_formula_is_written_as_text_in_the_csv_only(
    tmp_path: Path, text: str
) -> None:
    """An error message, generation id or name starting with = + - @ tab or CR gets a leading ' in
    results.csv; results.jsonl keeps the exact value."""
    rows = [row(error=text, generation_id=text, name=text)]
    write_results(tmp_path, rows, FIELDS)
    with (tmp_path / "results.csv").open(newline="", encoding="utf-8") as file:
        (cells,) = list(csv.DictReader(file))
    assert cells["error"] == cells["generation_id"] == cells["name"] == "'" + text
    (line,) = (tmp_path / "results.jsonl").read_text("utf-8").splitlines()
    assert json.loads(line)["error"] == text and json.loads(line)["name"] == text


def test_ordinary_cells_are_written_unchanged(tmp_path: Path) -> None:
    """Text that does not start like a formula, numbers and empty cells are written as they are."""
    rows = [row(error="Insufficient credits (a=1)", generation_id="5f0c-=x", cost_usd="1.120", size=2048)]
    write_results(tmp_path, rows, FIELDS)
    with (tmp_path / "results.csv").open(newline="", encoding="utf-8") as file:
        (cells,) = list(csv.DictReader(file))
    assert cells["error"] == "Insufficient credits (a=1)"
    assert (cells["generation_id"], cells["cost_usd"], cells["size"], cells["sha256"]) == (
        "5f0c-=x",
        "1.120",
        "2048",
        "",
    )


def test_line_breaks_inside_server_text_stay_inside_their_cell(tmp_path: Path) -> None:
    """A CR or LF inside an error message is quoted, so every job stays one CSV record."""
    rows = [row(index=0, error="line one\rline two"), row(index=1, error="a\nb\r\nc")]
    write_results(tmp_path, rows, FIELDS)
    with (tmp_path / "results.csv").open(newline="", encoding="utf-8") as file:
        records = list(csv.DictReader(file))
    assert [(r["index"], r["error"]) for r in records] == [("0", "line one\rline two"), ("1", "a\nb\r\nc")]


# ---------------------------------------------------------------- the rows, from a plan and a journal


def planned_job(job: PlanEntry, quote_usd: str | None = None, title: str | None = None) -> PlanRow:
    return PlanRow(job.key, job.index, job.name, job.model, job.output_path, quote_usd, title)


def entry(index: int, name: str, variables: dict[str, Any], request: dict[str, Any]) -> PlanEntry:
    return PlanEntry.from_json(
        {
            "index": index,
            "key": f"{index}" * 64,
            "name": name,
            "replica": 0,
            "model": "m",
            "output_path": f"{name}/{index}.mp4",
            "duration_s": 10,
            "cost_usd": "2.240",
            "vars": variables,
            "request": request,
        }
    )


def test_rows_carry_variables_request_times_and_billed_cost(tmp_path: Path) -> None:
    """One column per variable (manifest order; `var.` when a fixed column has the name), the prompt
    (shots one per line), aspect ratio, duration, ISO-8601 UTC times and the billed cost of the
    row's own generation; a job the journal does not know yet is pending with empty cells."""
    jobs = [
        entry(
            0, "hero", {"product": "mug", "aspect_ratio": "9:16"}, {"prompt": "a mug", "aspect_ratio": "9:16"}
        ),
        entry(
            1, "shots", {"product": "cup", "seed": 7}, {"multi_prompt": [{"prompt": "a", "duration": 5.0}]}
        ),
        entry(2, "later", {}, {"prompt": "p"}),
    ]
    journal = Journal.open(tmp_path)
    journal.add_jobs((j.key, j.index, j.name, j.model, j.output_path) for j in jobs[:2])
    journal.transition(jobs[0].key, JobState.SUBMITTING, attempts=1, submitted_at=1775091431.9)
    journal.claim_generation(jobs[0].key, "gen-0", 1, JobState.QUEUED)
    journal.transition(jobs[0].key, JobState.SUCCEEDED, completed_at=1775091590.0)
    journal.transition(jobs[1].key, JobState.SUBMITTING, attempts=1, submitted_at=1775091432.0)
    journal.claim_generation(jobs[1].key, "gen-1", 1, JobState.QUEUED)
    journal.record_billed_costs({"gen-0": "2.24", "gen-other": "9"})

    rows = result_rows(jobs, journal, "videos")
    write_results(tmp_path, rows, result_columns(jobs))
    with (tmp_path / "results.csv").open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        cells = list(reader)
    assert reader.fieldnames == [*FIELDS, "product", "var.aspect_ratio", "seed"]
    first, second, third = cells
    assert (first["prompt"], first["aspect_ratio"], first["duration_s"]) == ("a mug", "9:16", "10")
    assert (first["product"], first["var.aspect_ratio"], first["seed"]) == ("mug", "9:16", "")
    assert (first["submitted_at"], first["completed_at"], first["started_at"]) == (
        "2026-04-02T00:57:11Z",
        "2026-04-02T00:59:50Z",
        "",
    )
    assert (first["cost_usd"], first["billed_cost_usd"], first["generation_id"]) == ("2.240", "2.24", "gen-0")
    assert (second["prompt"], second["seed"], second["billed_cost_usd"]) == ("Shot 1 (5 s): a", "7", "")
    assert (third["state"], third["generation_id"], third["submitted_at"], third["product"]) == (
        "pending",
        "",
        "",
        "",
    )
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text("utf-8").splitlines()]
    assert lines[1]["seed"] == 7 and "product" not in lines[2]  # values keep their JSON type
    assert lines[0]["submitted_at"] == "2026-04-02T00:57:11Z"


def test_money_columns_add_up_to_the_spend_and_a_failed_row_that_cost_nothing_says_so(tmp_path: Path) -> None:
    """cost_usd is empty for a failed row the history says was not charged, billed 0; spent_usd counts
    every generation of a job (a retried one twice); a job of an earlier manifest that made a
    generation follows the plan's rows, `planned` false, at its superseded/ path; the column sums to
    the run directory's spend."""
    jobs = [entry(0, "ok", {}, {"prompt": "a"}), entry(1, "broke", {}, {"prompt": "b"})]
    old = entry(2, "old", {}, {"prompt": "c", "duration": 10})
    journal = Journal.open(tmp_path)
    journal.plan_jobs(planned_job(j, "2.240") for j in [*jobs, old])

    def generation(job: PlanEntry, generation_id: str, *ends: JobState) -> None:
        journal.transition(job.key, JobState.SUBMITTING, sent_request=json.dumps(dict(job.request)))
        journal.claim_generation(job.key, generation_id, 1, JobState.QUEUED)
        for end in ends:
            journal.transition(job.key, end)

    generation(jobs[0], "g-0a", JobState.PENDING)  # failed transiently: submitted again
    generation(jobs[0], "g-0b", JobState.SUCCEEDED, JobState.DONE)
    generation(jobs[1], "g-1", JobState.FAILED)
    generation(old, "g-2", JobState.SUCCEEDED, JobState.DONE, JobState.SUPERSEDED)
    journal.plan_jobs(planned_job(j, "2.240") for j in jobs)  # `old` has left the plan
    journal.record_billed_costs({"g-0a": None, "g-0b": "2.24", "g-1": None})

    rows = [*result_rows(jobs, journal, "videos"), *earlier_rows(journal, {j.key for j in jobs})]
    ok, broke, earlier = rows
    assert (ok["cost_usd"], ok["billed_cost_usd"], ok["spent_usd"], ok["planned"]) == (
        "2.240",
        "2.24",
        "2.24",
        True,
    )
    assert (broke["state"], broke["cost_usd"], broke["billed_cost_usd"], broke["spent_usd"]) == (
        "failed",
        None,
        "0",
        "0",
    )
    assert (earlier["planned"], earlier["state"], earlier["spent_usd"]) == (False, "superseded", "2.240")
    assert earlier["output_path"] == f"superseded/{old.key[:12]}/old/2.mp4"
    assert (earlier["prompt"], earlier["duration_s"], earlier["cost_usd"]) == ("c", 10, "2.240")
    assert sum(Decimal(r["spent_usd"]) for r in rows) == journal_spend(journal).total == Decimal("4.480")


def test_rows_name_each_job_by_its_readable_name_and_keep_its_key(tmp_path: Path) -> None:
    """`title` follows `name`: a planned row's comes from the plan; an earlier manifest's row takes the
    one the journal kept (or, journaled before titles, its name and key prefix); `key` stays whole."""
    planned = PlanEntry.from_json({**ENTRY, "key": "1" * 64, "title": "hero · mug · 9:16 · take 2"})
    kept = PlanEntry.from_json({**ENTRY, "index": 1, "key": "2" * 64, "name": "old"})
    untitled = PlanEntry.from_json({**ENTRY, "index": 2, "key": "3" * 64, "name": "older"})
    journal = Journal.open(tmp_path)
    journal.plan_jobs([planned_job(planned), planned_job(kept, title="old · lamp"), planned_job(untitled)])
    for job in (kept, untitled):
        journal.transition(job.key, JobState.SUBMITTING)
        journal.claim_generation(job.key, f"g-{job.index}", 1, JobState.QUEUED)
    journal.plan_jobs([planned_job(planned)])  # the other two have left the plan
    rows = [*result_rows([planned], journal, "videos"), *earlier_rows(journal, {planned.key})]
    assert [(r["key"], r["name"], r["title"]) for r in rows] == [
        ("1" * 64, "hero", "hero · mug · 9:16 · take 2"),
        ("2" * 64, "old", "old · lamp"),
        ("3" * 64, "older", "older · 333333"),
    ]
    assert FIELDS[FIELDS.index("name") + 1] == "title"
    write_results(tmp_path, rows, result_columns([planned]))
    with (tmp_path / "results.csv").open(newline="", encoding="utf-8") as file:
        assert [r["title"] for r in csv.DictReader(file)] == [r["title"] for r in rows]


def test_a_plan_json_from_before_readable_names_gets_them_by_the_same_rule(tmp_path: Path) -> None:
    """`batchgen report` on an old run directory: its plan.json has no titles, so they are made from
    the jobs' names, variables and replicas, as the planner would have."""
    jobs = [
        {**ENTRY, "index": i, "key": f"{i}" * 64, "replica": r, "vars": {"brand": "M", "product": p}}
        for i, (p, r) in enumerate([("mug", 0), ("mug", 1), ("lamp", 0), ("lamp", 1)])
    ]
    entries = plan_entries({"jobs": jobs}, tmp_path / "plan.json")
    assert [e.title for e in entries] == [
        "hero · mug · take 1",
        "hero · mug · take 2",
        "hero · lamp · take 1",
        "hero · lamp · take 2",
    ]
    given = plan_entries({"jobs": [{**jobs[0], "title": "as planned"}]}, tmp_path / "plan.json")
    assert given[0].title == "as planned"


ENTRY: dict[str, Any] = {
    "index": 0,
    "name": "hero",
    "replica": 0,
    "model": "m",
    "output_path": "hero/0.mp4",
    "cost_usd": "1.120",
    "vars": {},
    "request": {"prompt": "p"},
}


def test_billed_costs_survive_reopening_the_journal(tmp_path: Path) -> None:
    """A generation's billed cost (or "finished, nothing charged") is kept for offline rewrites."""
    journal = Journal.open(tmp_path)
    journal.record_billed_costs({"gen-a": "1.12", "gen-b": None})
    journal.close()
    assert Journal.open(tmp_path).billed_costs() == {"gen-a": "1.12", "gen-b": None}


def test_iso_utc() -> None:
    """Epoch seconds as ISO-8601 UTC with a Z, to the second or the millisecond; None stays None."""
    assert iso_utc(0) == "1970-01-01T00:00:00Z"
    assert iso_utc(1775091431.5) == "2026-04-02T00:57:11Z"
    assert iso_utc(1775091431.5, ms=True) == "2026-04-02T00:57:11.500Z"
    assert iso_utc(None) is None


def test_the_review_files_are_rewritten_only_when_what_they_are_made_from_changed(tmp_path: Path) -> None:
    """A rerun that changes nothing keeps results.* and report.html as they are (not rewritten); a state
    change, a billed cost, a new title, a result's video gone, or a missing file makes all three again."""
    jobs = [entry(0, "ok", {"product": "lamp"}, {"prompt": "a"}), entry(1, "later", {}, {"prompt": "b"})]
    journal = Journal.open(tmp_path)
    journal.plan_jobs(planned_job(j, "2.240") for j in jobs)
    files = [tmp_path / name for name in ("results.jsonl", "results.csv", "report.html")]

    def made() -> list[int]:
        write_outputs_unless_current(tmp_path, jobs, journal, campaign="c")
        return [path.stat().st_mtime_ns for path in files]

    def stamp_old() -> None:  # so that a rewrite is seen whatever the file system's clock resolution
        for path in files:
            os.utime(path, ns=(1, 1))

    video = tmp_path / "videos" / jobs[0].output_path
    video.parent.mkdir(parents=True)
    video.write_bytes(b"mp4")
    made()
    stamp_old()
    assert made() == [1, 1, 1]
    changes = [
        video.unlink,  # its card must stop showing it (`run --only` did not look at that job)
        lambda: journal.transition(jobs[0].key, JobState.SUBMITTING),
        lambda: journal.record_billed_costs({"g-0": "2.24"}),
        lambda: journal.plan_jobs(planned_job(j, "2.240", title=f"t{j.index}") for j in jobs),
        lambda: files[2].unlink(),
    ]
    for change in changes:
        change()
        assert all(stamp != 1 for stamp in made())
        stamp_old()
        assert made() == [1, 1, 1]
