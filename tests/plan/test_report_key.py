"""The manifest's `report:` key: its title template becomes each job's readable name at plan time, and
the fields it names are checked against every job spec, located like any other manifest problem."""

from __future__ import annotations

import pytest

from batchgen.manifest import manifest_schema
from tests.plan.conftest import HEADER, Workspace

CAMPAIGN = (
    HEADER
    + """\
vars: {brand: Meadow}
rows: products.csv
jobs:
  - name: hero
    prompt: "A {product} by {brand}: {tagline}"
    aspect_ratio: "{ratio}"
    matrix: {ratio: ["16:9", "9:16"]}
    repeat: 2
  - name: story
    prompt: "A walk with the {product}"
    aspect_ratio: "9:16"
"""
)
PRODUCTS = {"products.csv": "product,tagline\nmug,Warm mornings\ntote,Carry spring\n"}


def test_the_title_template_is_each_jobs_readable_name(ws: Workspace) -> None:
    """A variable (`product`), a request field (`aspect_ratio`: the story spec has it as a literal) and
    `take` for the spec that makes several: the plan's titles, as status, results and picks show them."""
    plan = ws.plan(CAMPAIGN + 'report: {title: "{product} · {aspect_ratio}", group_by: product}\n', PRODUCTS)
    assert [job.title for job in plan.jobs] == [
        "mug · 16:9 · take 1",
        "mug · 16:9 · take 2",
        "mug · 9:16 · take 1",
        "mug · 9:16 · take 2",
        "tote · 16:9 · take 1",
        "tote · 16:9 · take 2",
        "tote · 9:16 · take 1",
        "tote · 9:16 · take 2",
        "mug · 9:16",
        "tote · 9:16",
    ]
    assert [job.label for job in plan.jobs] == [job.title for job in plan.jobs]


def test_without_a_title_the_readable_names_are_the_usual_ones(ws: Workspace) -> None:
    """No `report:` (or one with only `group_by`): the default rule, job name first."""
    for extra in ("", "report: {group_by: name}\n"):
        plan = ws.plan(CAMPAIGN + extra, PRODUCTS)
        assert plan.jobs[0].title == "hero · mug · 16:9 · take 1"
        assert plan.jobs[-1].title == "story · tote"


def test_the_manifest_keeps_report_as_written(ws: Workspace) -> None:
    """`Manifest.report` holds the key as written (None without it); the schema documents both keys."""
    manifest = ws.load(CAMPAIGN + "report: {title: '{product}', group_by: tagline}\n", PRODUCTS)
    assert manifest.report == {"title": "{product}", "group_by": "tagline"}
    assert ws.load(CAMPAIGN, PRODUCTS).report is None
    report = manifest_schema()["properties"]["report"]
    assert set(report["properties"]) == {"title", "group_by"} and report["additionalProperties"] is False


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (
            'report: {title: "{produkt}"}',
            [
                "m.yaml:15:17: report.title: unknown field 'produkt' in '{produkt}'\n"
                "    hint: did you mean 'product'?"
            ],
        ),
        (
            'report: {title: "{tagline} · {ratio}"}',
            [
                "m.yaml:15:17: report.title: 'ratio' is neither a variable nor a request field of jobs[1] (story)\n"
                "    hint: give those jobs the variable, or use fields every job has"
            ],
        ),
        (
            "report: {title: '{{name}'}",
            [
                "m.yaml:15:17: report.title: a lone '}' (write '}}' for the character itself)\n"
                '    hint: e.g. title: "{product} · {aspect_ratio}"'
            ],
        ),
        (
            "report: {group_by: brnd}",
            [
                "m.yaml:15:20: report.group_by: 'brnd' is not a variable of any job\n    hint: did you mean 'brand'?"
            ],
        ),
        (
            "report: {title: ''}",
            ["m.yaml:15:17: report.title: must not be empty"],
        ),
    ],
)
def test_a_bad_report_key_is_a_located_problem(ws: Workspace, report: str, expected: list[str]) -> None:
    """Each problem names the file, line and column of the key, what is wrong and a hint."""
    assert ws.errors(CAMPAIGN + report + "\n", PRODUCTS) == expected


def test_report_problems_come_with_the_others_in_one_round(ws: Workspace) -> None:
    """A bad title beside a bad job name: both reported together, nothing planned."""
    text = CAMPAIGN.replace("name: story", "name: 'st ory'") + "report: {title: '{nope}'}\n"
    errors = ws.errors(text, PRODUCTS)
    assert len(errors) == 2
    assert "jobs[1].name" in errors[0] and "report.title: unknown field 'nope'" in errors[1]


def test_a_spec_whose_csv_cannot_be_read_is_not_blamed_for_the_title(ws: Workspace) -> None:
    """The CSV's own problem is reported; its columns are unknown, so the title is not refused for it."""
    errors = ws.errors(CAMPAIGN + "report: {title: '{tagline}'}\n", {"products.csv": ""})
    assert len(errors) == 1 and "products.csv" in errors[0] and "is empty" in errors[0]
