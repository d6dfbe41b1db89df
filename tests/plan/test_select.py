"""`--only KEY=VALUE` as a pure filter over planned jobs, and tracing a bad CSV value to its row."""

from __future__ import annotations

import json

import pytest

from batchgen.errors import UsageError
from batchgen.planning import plan_to_json
from batchgen.planning.select import Selection, job_facts, json_job_facts, select_jobs, select_plan
from tests.plan.conftest import HEADER, Workspace

MANIFEST = (
    HEADER
    + """\
defaults: {duration: 5, generate_audio: false}
matrix: {product: [lamp, mug], aspect_ratio: ["16:9", "9:16"]}
jobs:
  - name: hero
    prompt: "A {product}"
    aspect_ratio: "{aspect_ratio}"
    repeat: 2
  - name: detail
    prompt: "Close on the {product}"
    aspect_ratio: "{aspect_ratio}"
    duration: 10
"""
)


def names(jobs: tuple[object, ...]) -> list[tuple[str, str, str, int]]:
    return [(j.name, j.vars["product"], j.request["aspect_ratio"], j.replica) for j in jobs]  # type: ignore[attr-defined]


def test_one_term_matches_a_variable_and_keeps_plan_order(ws: Workspace) -> None:
    """product=lamp: every lamp job (both specs, every ratio and replica), in plan order."""
    plan = ws.plan(MANIFEST)
    chosen = select_jobs(plan, Selection.parse(["product=lamp"]))
    assert names(chosen) == [
        ("hero", "lamp", "16:9", 0), ("hero", "lamp", "16:9", 1), ("hero", "lamp", "9:16", 0),
        ("hero", "lamp", "9:16", 1), ("detail", "lamp", "16:9", 0), ("detail", "lamp", "9:16", 0),
    ]  # fmt: skip
    assert [j.index for j in chosen] == sorted(j.index for j in chosen)


def test_the_same_key_twice_is_either_value_different_keys_must_all_match(ws: Workspace) -> None:
    """`--only` with one KEY twice matches either value; different KEYs must all match."""
    plan = ws.plan(MANIFEST)
    either = select_jobs(plan, Selection.parse(["name=detail", "name=hero", "aspect_ratio=9:16"]))
    assert {(n, r) for n, _, r, _ in names(either)} == {("hero", "9:16"), ("detail", "9:16")}
    assert len(either) == 6
    both = select_jobs(plan, Selection.parse(["name=hero", "replica=1", "product=mug"]))
    assert names(both) == [("hero", "mug", "16:9", 1), ("hero", "mug", "9:16", 1)]


def test_built_ins_request_fields_booleans_numbers_and_key_prefixes(ws: Workspace) -> None:
    """Request fields (duration 10, generate_audio false), the model, the index and a 12-character key
    prefix as `plan` shows it all select; a 3-character prefix is too short to mean one job."""
    plan = ws.plan(MANIFEST)
    assert len(select_jobs(plan, Selection.parse(["duration=10"]))) == 4
    assert len(select_jobs(plan, Selection.parse(["generate_audio=False"]))) == 12
    assert len(select_jobs(plan, Selection.parse(["generate_audio=true"]))) == 0
    assert len(select_jobs(plan, Selection.parse([f"model={plan.jobs[0].model}"]))) == 12
    assert [j.index for j in select_jobs(plan, Selection.parse(["index=7"]))] == [7]
    third = plan.jobs[3]
    assert select_jobs(plan, Selection.parse([f"key={third.key[:12]}"])) == (third,)
    assert select_jobs(plan, Selection.parse([f"key={third.key[:3]}"])) == ()


def test_a_narrowed_plan_quotes_only_its_jobs(ws: Workspace) -> None:
    """A plan narrowed by `--only` quotes the cost of its jobs only; no selection returns the plan itself."""
    plan = ws.plan(MANIFEST)
    lamp = select_plan(plan, Selection.parse(["product=lamp"]))
    assert lamp.total_cost_usd == plan.cost_of(select_jobs(plan, Selection.parse(["product=lamp"])))
    assert lamp.total_cost_usd is not None and plan.total_cost_usd is not None
    assert lamp.total_cost_usd < plan.total_cost_usd
    assert select_plan(plan, None) is plan


def test_plan_json_jobs_have_the_same_facts_as_the_jobs(ws: Workspace) -> None:
    """status and cancel choose from a run's plan.json: the same facts as the plan they were made from."""
    plan = ws.plan(MANIFEST)
    from_json = json.loads(json.dumps(plan_to_json(plan)))["jobs"]
    assert [json_job_facts(j) for j in from_json] == [job_facts(j) for j in plan.jobs]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["product"], "--only 'product': expected KEY=VALUE, such as product=lamp or aspect_ratio=9:16"),
        (["=lamp"], "--only '=lamp': expected KEY=VALUE"),
        (
            ["prodct=lamp"],
            "--only prodct=…: no job has a variable or field 'prodct' (did you mean 'product'?); known: "
            "aspect_ratio, duration, generate_audio, index, key, model, name, product, prompt, replica",
        ),
    ],
)
def test_bad_terms_and_unknown_keys_are_usage_errors(ws: Workspace, flags: list[str], message: str) -> None:
    """A term without '=', an empty key, or an unknown key (with a suggestion and the known keys) is a
    UsageError."""
    plan = ws.plan(MANIFEST)
    with pytest.raises(UsageError) as caught:
        select_jobs(plan, Selection.parse(flags))
    assert str(caught.value).startswith(message)


def test_a_bad_value_from_a_csv_row_is_reported_at_that_row(ws: Workspace) -> None:
    """Each bad row is named by its CSV file and line, with the column and where the template uses it;
    rows that are fine are not mentioned."""
    errors = ws.errors(
        HEADER
        + """\
rows: products.csv
jobs:
  - name: hero
    prompt: "A {product}"
    aspect_ratio: "{ratio}"
    repeat: 2
""",
        files={"products.csv": "product,ratio\nmug,16:9\nlamp,21:9\nvase,16:9\nsofa,4:3\n"},
    )
    assert errors == [
        'products.csv:3: jobs[0] (hero, 2 jobs): aspect_ratio: "21:9" is not one of "9:16", "1:1", "16:9" '
        "(column ratio of this row, used at m.yaml:8:19)",
        'products.csv:5: jobs[0] (hero, 2 jobs): aspect_ratio: "4:3" is not one of "9:16", "1:1", "16:9" '
        "(column ratio of this row, used at m.yaml:8:19)",
    ]


def test_a_value_a_job_sets_itself_is_not_blamed_on_the_manifest_rows(ws: Workspace) -> None:
    """The job spec's own matrix overrides the manifest's CSV column: the problem is at the matrix."""
    errors = ws.errors(
        HEADER
        + """\
rows: r.csv
jobs:
  - name: hero
    prompt: "A {product}"
    matrix: {ratio: ["21:9"]}
    aspect_ratio: "{ratio}"
""",
        files={"r.csv": "product,ratio\nmug,16:9\n"},
    )
    assert len(errors) == 1 and errors[0].startswith("m.yaml:8:22: jobs[0] (hero, replica 0): aspect_ratio:")
    assert errors[0].endswith("(this value of matrix ratio, used at m.yaml:9:19)")
