"""One `plan` reports every problem of a manifest: each stage runs on what the earlier ones did not
refuse, and never on what they did (no problem that only follows from another)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.plan.conftest import HEADER, Workspace, tiny_png

ONE_MISTAKE_PER_STAGE = """\
    version: 1
    name: one-round
    model: kling-video-o3-pro-reference-to-video
    assets:
      logo: refs/logo.png
    run:
      concurency: 8
    jobs:
      - name: hero
        prompt: "A mug on {scen}"
        aspect_ratio: "{ratio}"
        matrix:
          scene: [a desk]
          ratio: ["16:9", "4:5"]
      - name: detail
        prompt: A close-up
        duration: 99
      - name: logo
        prompt: The logo
        input_image: ["{asset:logo}"]
      - name: other
        model: kling-video-o3-pro-refrence-to-video
        prompt: x
"""


def test_one_plan_reports_a_mistake_of_every_stage_each_where_it_was_written(tmp_path: Path) -> None:
    """`batchgen plan` (offline, a real process) on a manifest with one mistake per stage: a missing
    asset file, an unknown `run:` key (schema), an unknown template variable, a matrix value the model
    does not offer (at the matrix item), a duration the model's rules refuse, and an unknown model:
    exit 2 and all six at once, sorted by line, each with file:line:column, and nothing else."""
    (tmp_path / "m.yaml").write_text(textwrap.dedent(ONE_MISTAKE_PER_STAGE), "utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("OXEN_API_KEY", "OXEN_API_BASE")}
    done = subprocess.run(
        [sys.executable, "-m", "batchgen", "plan", "m.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    located = [line for line in done.stderr.splitlines() if not line.startswith("    hint:")]
    assert located == [
        "batchgen: error: m.yaml:5:9: assets.logo: cannot read asset file 'refs/logo.png': not found",
        "m.yaml:7:3: run.concurency: unknown key 'concurency'",
        "m.yaml:10:13: jobs[0].prompt: unknown variable 'scen'",
        'm.yaml:14:23: jobs[0] (hero, replica 0): aspect_ratio: "4:5" is not one of "9:16", "1:1", "16:9" '
        "(this value of matrix ratio, used at m.yaml:11:19)",
        "m.yaml:17:15: jobs[1] (detail, replica 0): duration: duration value '99' is invalid. Try using "
        "duration='5' instead, as duration support may vary by model and mode.",
        "m.yaml:22:12: jobs[3].model: 'kling-video-o3-pro-refrence-to-video' is not among the shipped "
        "model snapshots: set OXEN_API_KEY to fetch its schema",
    ]


def test_a_job_spec_with_a_problem_of_its_own_is_left_out_of_planning(ws: Workspace) -> None:
    """A spec the schema refuses (repeat: 0) is not planned, so its unknown variable is not guessed
    at; the next spec is planned and its problem reported in the same round."""
    errors = ws.errors(
        HEADER
        + """\
jobs:
  - name: a
    prompt: "{nope}"
    repeat: 0
  - name: b
    prompt: x
    aspect_ratio: "4:3"
"""
    )
    assert errors == [
        "m.yaml:7:13: jobs[0].repeat: must be ≥ 1, got 0",
        'm.yaml:10:19: jobs[1] (b, replica 0): aspect_ratio: "4:3" is not one of "9:16", "1:1", "16:9"',
    ]


def test_an_asset_that_could_not_be_used_is_not_reported_again_by_the_jobs_naming_it(ws: Workspace) -> None:
    """A missing asset file is one problem: the jobs that name it, directly or through `{asset:$v}`,
    add none of their own ("unknown asset", "names no asset"), while their other fields are checked."""
    errors = ws.errors(
        HEADER
        + """\
assets: {mug: refs/mug.png, tote: refs/tote.png}
matrix: {product: [mug, tote]}
jobs:
  - name: by-var
    prompt: "A {product}"
    input_image: ["{asset:$product}"]
  - name: literal
    prompt: "The mug"
    input_image: ["{asset:mug}"]
    duration: 2
""",
        files={"refs/tote.png": tiny_png()},
    )
    assert [e.partition("\n")[0] for e in errors] == [
        "m.yaml:4:15: assets.mug: cannot read asset file 'refs/mug.png': not found",
        "m.yaml:13:15: jobs[1] (literal, 2 jobs): duration: duration value '2' is invalid. Try using "
        "duration='5' instead, as duration support may vary by model and mode.",
    ]


def test_a_template_that_fails_leaves_the_rest_of_its_request_checked(ws: Workspace) -> None:
    """An unknown variable in `duration`: its template text is never checked as a duration (no
    "duration value '{dur}' is invalid"), while the request's other fields are, in the same round."""
    errors = ws.errors(
        HEADER
        + """\
jobs:
  - name: a
    prompt: x
    duration: "{dur}"
    aspect_ratio: "4:3"
"""
    )
    assert [e.partition("\n")[0] for e in errors] == [
        "m.yaml:7:15: jobs[0].duration: unknown variable 'dur'",
        'm.yaml:8:19: jobs[0] (a, replica 0): aspect_ratio: "4:3" is not one of "9:16", "1:1", "16:9"',
    ]


def test_a_problem_in_what_every_job_reads_stops_before_planning(ws: Workspace) -> None:
    """A misspelt `matrix:` would make every use of its axes an unknown variable: the load's own
    problem is the only one reported."""
    errors = ws.errors(
        HEADER + "matirx: {ratio: ['16:9']}\njobs: [{name: a, prompt: x, aspect_ratio: '{ratio}'}]\n"
    )
    assert [e.partition("\n")[0] for e in errors] == ["m.yaml:4:1: matirx: unknown key 'matirx'"]
