"""Picks as `deliver --picks` reads them (the report's CSV export, a hand-edited list), each resolved to
a done result of the current plan or refused with why; and what a client's files keep of a job."""

from __future__ import annotations

import csv
import io
import json

import pytest

from batchgen.errors import UsageError
from batchgen.journal.store import JobRecord
from batchgen.results.client import CLIENT_CSV_FIELDS, client_csv, client_sidecar, client_vars
from batchgen.results.picks import Pick, parse_picks, resolve_picks
from batchgen.states import JobState
from batchgen.target import CLIENT, DeliveryTarget

DONE_A = "a1b2c3d4e5f6" + "0" * 52
DONE_B = "a1b2c3ffffff" + "1" * 52
FAILED = "f00d00000000" + "2" * 52
PENDING = "beef00000000" + "3" * 52
OLD = "0123456789ab" + "4" * 52  # a take of a job the manifest has since changed


def record(
    key: str, idx: int, state: JobState, *, planned: bool = True, error: str | None = None
) -> JobRecord:
    sha = "ab" * 32 if state is JobState.DONE else None
    return JobRecord(
        key,
        idx,
        "hero",
        "m",
        f"hero/{idx}.mp4",
        state,
        sha256=sha,
        planned=planned,
        error=error,
        title=f"hero {idx}",
    )


RECORDS = {
    r.key: r
    for r in (
        record(DONE_B, 1, JobState.DONE),
        record(DONE_A, 0, JobState.DONE),
        record(FAILED, 2, JobState.FAILED, error="the provider said: content policy"),
        record(PENDING, 3, JobState.PENDING),
        record(OLD, 4, JobState.DONE, planned=False),
    )
}


def test_the_reports_csv_export_is_read_by_its_key_column_with_titles_and_lines() -> None:
    """The report's export (key, title, path, …; quoted cells, formula-guarded titles) gives one pick a
    row, with the row's title and line for messages; a header without `key` is read as a list."""
    text = (
        'key,title,path,name\nA1B2C3D4E5F6,"hero · 9:16, take 2",videos/a.mp4,hero\n\n'
        + f"{OLD},'=sum,x,y\n0123456789ab,'\ttab,x,y\n"
    )
    picks = parse_picks(text, "picks.csv")
    assert picks == [
        Pick("a1b2c3d4e5f6", "picks.csv line 2", "hero · 9:16, take 2"),
        Pick(OLD, "picks.csv line 4", "=sum"),
        Pick("0123456789ab", "picks.csv line 5", "\ttab"),
    ]
    assert [p.key for p in parse_picks("title,path\n", "x.csv")] == ["title,path"]


def test_a_hand_edited_list_takes_one_key_or_prefix_a_line_with_comments() -> None:
    """Blank lines and `#` comments (whole lines or after a key) are skipped; keys are lower-cased."""
    text = "# picks for the client\n\nA1B2C3D4E5F6   # the hero\n  beef00000000\n#f00d00000000\n"
    assert parse_picks(text, "keys.txt") == [
        Pick("a1b2c3d4e5f6", "keys.txt line 3"),
        Pick("beef00000000", "keys.txt line 4"),
    ]


def test_picks_resolve_to_done_results_of_the_current_plan_in_plan_order() -> None:
    """Full keys and unique prefixes name done results; the keys come back in the journal's order, once."""
    picks = [Pick(DONE_B, "l1"), Pick("a1b2c3d4", "l2"), Pick(DONE_A, "l3")]
    assert resolve_picks(picks, RECORDS) == [DONE_A, DONE_B]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (OLD[:12], "its job (hero 4) is no longer in the current plan: the manifest changed it"),
        (FAILED[:12], "its job failed (the provider said: content policy): there is no result to send"),
        (PENDING[:12], "its job is pending, not done: there is no result yet"),
        ("a1b2c3", "names 2 jobs of the plan (a1b2c3d4e5f6 'hero 0', a1b2c3ffffff 'hero 1')"),
        ("c0ffee000000", "no job of this run directory has this key"),
        ("a1b2", "not a job key (keys are hexadecimal; give at least 6 characters)"),
        ("hero-take-1", "not a job key"),
    ],
)
def test_a_pick_that_is_not_a_done_result_of_the_plan_is_refused_saying_why(text: str, why: str) -> None:
    """A stale pick (its job changed), a failed or unfinished job, an ambiguous, unknown or malformed key:
    refused, the message naming the pick, where it is written and why."""
    with pytest.raises(UsageError) as refused:
        resolve_picks([Pick(DONE_A, "p.csv line 2"), Pick(text, "p.csv line 3", "hero")], RECORDS)
    message = str(refused.value)
    assert f"pick {text[:12]} ('hero', p.csv line 3): {why}" in message
    assert "a pick is not a done result of the current plan, nothing was sent" in message


def test_every_refused_pick_is_named_in_one_message() -> None:
    """Two bad picks: one message with both, so one round of editing fixes the file."""
    with pytest.raises(UsageError, match=r"2 picks are not .*\n  pick f00d.*\n  pick 0123"):
        resolve_picks([Pick(FAILED, "l1"), Pick(OLD, "l2"), Pick(DONE_A, "l3")], RECORDS)


PLAN_JOB = {
    "key": DONE_A,
    "name": "hero",
    "title": "hero · mug · 9:16",
    "replica": 0,
    "model": "kling",
    "output_path": "hero/mug-9x16.mp4",
    "duration_s": 5,
    "cost_usd": "1.120",
    "vars": {
        "product": "mug",
        "ref": "https://internal.example/ref.png",
        "inline": ["data:image/png;base64,AA"],
    },
    "request": {"aspect_ratio": "9:16", "input_image": ["https://internal.example/ref.png"], "prompt": "p"},
}


def test_a_client_sidecar_says_what_the_result_is_and_nothing_internal() -> None:
    """Name, title, variables (without URLs or data URIs), model, aspect ratio, duration, file, sha256:
    no cost, no request, no reference image."""
    sidecar = json.loads(client_sidecar(PLAN_JOB, "cd" * 32))
    assert sidecar == {
        "name": "hero",
        "title": "hero · mug · 9:16",
        "replica": 0,
        "model": "kling",
        "aspect_ratio": "9:16",
        "duration_s": 5,
        "vars": {"product": "mug"},
        "file": "mug-9x16.mp4",
        "sha256": "cd" * 32,
    }
    assert client_vars({"a": "ftp://x/y", "b": {"c": "DATA:text/plain,x"}, "d": 3}) == {"d": 3}


def test_a_client_results_csv_has_a_row_per_result_and_no_money() -> None:
    """The client's results.csv: the client fields and a column per variable kept; no cost, no URL."""
    text = client_csv([(PLAN_JOB, "cd" * 32)]).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [*CLIENT_CSV_FIELDS, "var.product"]
    assert rows[0]["path"] == "videos/hero/mug-9x16.mp4" and rows[0]["var.product"] == "mug"
    assert "1.120" not in text and "internal.example" not in text and "cost" not in text


def test_a_client_results_csv_keeps_a_cr_in_its_cell_and_guards_every_formula_start() -> None:
    """A value holding a CR stays one cell of one row (the rows end in CRLF, as the run's results.csv),
    and a value a spreadsheet would run as a formula, a tab or CR start included, is kept as text."""
    job = {**PLAN_JOB, "title": "\tSUM(A1)", "vars": {"product": "mug\rcup", "note": "@cmd", "sign": "-1"}}
    text = client_csv([(job, "cd" * 32)]).decode()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == 1 and rows[0]["var.product"] == "mug\rcup"
    assert (rows[0]["title"], rows[0]["var.note"], rows[0]["var.sign"]) == ("'\tSUM(A1)", "'@cmd", "'-1")


def test_a_manifests_deliver_for_client_makes_a_client_target_and_team_is_the_default() -> None:
    """`deliver: {for: client}` gives the client audience (the run then delivers client-safe); without
    `for` (or `for: team`) the full mirror."""
    client = DeliveryTarget.from_manifest({"repo": "client/spring", "for": "client"}, {"name": "s"})
    assert client.audience == CLIENT
    assert DeliveryTarget.from_manifest({"repo": "client/spring"}, {"name": "s"}).audience == "team"
    assert (
        DeliveryTarget.from_manifest({"repo": "client/spring", "for": "team"}, {"name": "s"}).audience
        == "team"
    )
