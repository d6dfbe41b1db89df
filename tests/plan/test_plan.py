"""Planning: expansion order, variables, templates, asset references, keys, plan output."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from batchgen.manifest import load_manifest
from batchgen.planning import (
    Plan,
    build_plan,
    format_plan,
    job_key,
    plan_to_json,
    resolve_request,
    write_plan_json,
)
from batchgen.registry import ModelSpec, SnapshotCatalog
from tests.plan.conftest import HEADER, KLING, Workspace, tiny_png

ASSETS = "assets:\n  mug: refs/mug.png\n  web: https://x.test/web.png\n"
FILES: dict[str, bytes | str] = {"refs/mug.png": tiny_png()}


def test_expansion_order_is_rows_then_matrix_then_replica(ws: Workspace) -> None:
    """Per spec: manifest x job CSV rows (file order), then manifest then job matrix axes (row-major), then replicas."""
    plan = ws.plan(
        HEADER
        + """\
rows: m.csv
matrix: {a: [1, 2]}
jobs:
  - name: j
    rows: j.csv
    matrix: {b: [x, y]}
    repeat: 2
    prompt: "{m}{n} {a}{b}"
  - name: k
    prompt: "{m} {a}"
""",
        files={"m.csv": "m\nM1\nM2\n", "j.csv": "n\nN1\n"},
    )
    order = [(job.name, job.request["prompt"], job.replica) for job in plan.jobs]
    assert order[:8] == [
        ("j", "M1N1 1x", 0), ("j", "M1N1 1x", 1), ("j", "M1N1 1y", 0), ("j", "M1N1 1y", 1),
        ("j", "M1N1 2x", 0), ("j", "M1N1 2x", 1), ("j", "M1N1 2y", 0), ("j", "M1N1 2y", 1),
    ]  # fmt: skip
    assert order[8][1] == "M2N1 1x"
    assert [p for n, p, _ in order if n == "k"] == ["M1 1", "M1 2", "M2 1", "M2 2"]
    assert [job.index for job in plan.jobs] == list(range(20))


def test_variable_precedence(ws: Workspace) -> None:
    """Lowest to highest: manifest vars, manifest matrix, manifest rows, job vars, job matrix, job rows, built-ins."""
    plan = ws.plan(
        HEADER
        + """\
vars: {v1: mv, v2: mv, v3: mv, v4: mv, v5: mv, v6: mv}
matrix: {v2: [mm], v3: [mm], v4: [mm], v5: [mm], v6: [mm]}
rows: m.csv
jobs:
  - name: j
    vars: {v4: jv, v5: jv, v6: jv}
    matrix: {v5: [jm], v6: [jm]}
    rows: j.csv
    prompt: "{v1} {v2} {v3} {v4} {v5} {v6} {name} {replica} {index} {model}"
""",
        files={"m.csv": "v3,v4,v5,v6\nmr,mr,mr,mr\n", "j.csv": "v6\njr\n"},
    )
    (job,) = plan.jobs
    assert job.request["prompt"] == f"mv mm mr jv jm jr j 0 0 {KLING}"
    assert job.vars == {"v1": "mv", "v2": "mm", "v3": "mr", "v4": "jv", "v5": "jm", "v6": "jr"}


def test_typed_substitution_keeps_types_of_whole_field_templates(ws: Workspace) -> None:
    """`"{d}"` gives the variable's own value (int, bool); inside longer text values use str()."""
    plan = ws.plan(
        HEADER
        + """\
jobs:
  - name: j
    vars: {d: 7, audio: true, s: 3}
    prompt: "{d} seconds, audio {audio}"
    duration: "{d}"
    generate_audio: "{audio}"
    seed: "{s}"
"""
    )
    request = plan.jobs[0].request
    assert request["duration"] == 7 and request["generate_audio"] is True and request["seed"] == 3
    assert request["prompt"] == "7 seconds, audio True"


def test_templates_in_nested_lists_and_mappings(ws: Workspace) -> None:
    """Templates work in any string, however deep: shots, elements, lists."""
    plan = ws.plan(
        HEADER
        + """\
jobs:
  - name: j
    vars: {p: beach, d: 4, u: "https://x.test/f.png"}
    multi_prompt:
      - {prompt: "Waves on the {p}", duration: "{d}"}
      - {prompt: "{{literal}} {p}", duration: 6}
    elements:
      - frontal_image_url: "{u}"
        reference_image_urls: ["{u}"]
"""
    )
    request = plan.jobs[0].request
    assert request["multi_prompt"] == [
        {"prompt": "Waves on the beach", "duration": 4},
        {"prompt": "{literal} beach", "duration": 6},
    ]
    assert request["elements"] == [
        {"frontal_image_url": "https://x.test/f.png", "reference_image_urls": ["https://x.test/f.png"]}
    ]
    assert plan.jobs[0].duration_s == 10


def test_asset_references(ws: Workspace) -> None:
    """URL assets give their URL (also inside text); local ones give a content placeholder, listed in Job.assets."""
    plan = ws.plan(
        HEADER
        + ASSETS
        + """\
jobs:
  - name: j
    matrix: {which: [web, mug]}
    prompt: "like {asset:web}, take {which}"
    input_image: ["{asset:$which}", "{asset:mug}"]
""",
        files=FILES,
    )
    mug = load_manifest(ws.root / "m.yaml").assets["mug"]
    web_job, mug_job = plan.jobs
    assert web_job.request["prompt"] == "like https://x.test/web.png, take web"
    assert web_job.request["input_image"] == ["https://x.test/web.png", "batchgen-asset:sha256:" + mug.sha256]  # type: ignore[union-attr]
    assert [a.name for a in web_job.assets] == ["mug"]
    assert mug_job.request["input_image"][0] == mug_job.request["input_image"][1]
    assert len(mug_job.assets) == 1  # one upload even when referenced twice


def test_resolve_request_substitutes_placeholders_and_refuses_missing(ws: Workspace) -> None:
    """resolve_request replaces exact placeholders recursively, leaving everything else alone."""
    plan = ws.plan(
        HEADER + ASSETS + "jobs: [{name: j, prompt: x, input_image: ['{asset:mug}', '{asset:web}']}]\n",
        files=FILES,
    )
    job = plan.jobs[0]
    (asset,) = job.assets
    sent = resolve_request(job.request, {asset.sha256: "https://hub.test/mug.png"})
    assert sent["input_image"] == ["https://hub.test/mug.png", "https://x.test/web.png"]
    assert job.request["input_image"][0] == asset.placeholder  # the plan itself is untouched
    with pytest.raises(RuntimeError, match="no URL for local asset"):
        resolve_request(job.request, {})


def test_model_per_job_and_templated(ws: Workspace) -> None:
    """A job's model overrides the manifest's; a model may be a template; {model} is the resolved id."""
    plan = ws.plan(
        HEADER
        + """\
jobs:
  - name: a
    prompt: "{model}"
  - name: b
    vars: {m: kling-video-o3-omni}
    model: "{m}"
    prompt: "{model}"
"""
    )
    assert [(j.model, j.request["model"], j.request["prompt"]) for j in plan.jobs] == [
        (KLING, KLING, KLING),
        ("kling-video-o3-omni",) * 3,
    ]


def test_target_namespace_defaults_and_overrides(ws: Workspace) -> None:
    """Top-level target_namespace < defaults < job fields; the merge is shallow."""
    plan = ws.plan(
        HEADER
        + """\
target_namespace: org-a
defaults: {aspect_ratio: "1:1", elements: [{frontal_image_url: "https://x.test/a.png"}]}
jobs:
  - name: a
    prompt: x
  - name: b
    prompt: y
    target_namespace: org-b
    elements: []
"""
    )
    a, b = plan.jobs
    assert a.request == {
        "model": KLING,
        "target_namespace": "org-a",
        "aspect_ratio": "1:1",
        "elements": [{"frontal_image_url": "https://x.test/a.png"}],
        "prompt": "x",
    }
    assert b.request["target_namespace"] == "org-b" and b.request["elements"] == []


KEY_MANIFEST = HEADER + 'jobs:\n  - name: hero\n    prompt: "A mug on a table"\n    aspect_ratio: "16:9"\n'
#: The key of KEY_MANIFEST's job. If this changes, every existing run's resume and dedup breaks.
KEY_OF_KEY_MANIFEST = "81eb721e443e29769a9a07807ea7c9a3afec4ab21e7dde3e8a38795627359c36"


def test_key_is_the_documented_canonical_hash(ws: Workspace) -> None:
    """The key is sha256 of sorted, whitespace-free, UTF-8 JSON of model, request and replica."""
    (job,) = ws.plan(KEY_MANIFEST).jobs
    canonical = (
        '{"model":"kling-video-o3-pro-reference-to-video","replica":0,"request":'
        '{"aspect_ratio":"16:9","model":"kling-video-o3-pro-reference-to-video","prompt":"A mug on a table"}}'
    )
    import hashlib

    assert job.key == hashlib.sha256(canonical.encode()).hexdigest() == KEY_OF_KEY_MANIFEST
    assert job_key(KLING, job.request, 0) == job.key


def test_key_ignores_yaml_formatting_key_order_comments_and_position(ws: Workspace) -> None:
    """Reordering keys or jobs, changing quoting, flow style or comments leaves every key as it was."""
    reformatted = (
        "# a comment\nmodel: kling-video-o3-pro-reference-to-video\nversion: 1\nname: t\n"
        "jobs:\n  - {aspect_ratio: '16:9', prompt: A mug on a table,   name: hero}  # trailing\n"
    )
    reordered = KEY_MANIFEST + "  - name: other\n    prompt: something else\n"
    moved = HEADER + "jobs:\n  - name: other\n    prompt: something else\n" + KEY_MANIFEST.split("jobs:\n")[1]
    assert ws.plan(reformatted).jobs[0].key == KEY_OF_KEY_MANIFEST
    assert ws.plan(reordered).jobs[0].key == KEY_OF_KEY_MANIFEST
    assert ws.plan(moved).jobs[1].key == KEY_OF_KEY_MANIFEST


@pytest.mark.parametrize(
    "change",
    [
        ('prompt: "A mug on a table"', 'prompt: "A mug on a table."'),
        ('aspect_ratio: "16:9"', 'aspect_ratio: "9:16"'),
        ('aspect_ratio: "16:9"', 'aspect_ratio: "16:9"\n    seed: 1'),
        ('aspect_ratio: "16:9"', 'aspect_ratio: "16:9"\n    duration: 5'),
        ('aspect_ratio: "16:9"', 'aspect_ratio: "16:9"\n    repeat: 2'),
        ("model: kling-video-o3-pro-reference-to-video", "model: kling-video-o3-omni"),
    ],
)
def test_key_changes_with_any_parameter(ws: Workspace, change: tuple[str, str]) -> None:
    """Any request parameter, the model or the replica changes the key (even a default's value spelled out)."""
    plan = ws.plan(KEY_MANIFEST.replace(*change))
    assert plan.jobs[-1].key != KEY_OF_KEY_MANIFEST


def test_key_changes_with_local_asset_content(ws: Workspace) -> None:
    """A local asset's bytes are part of the key (through the placeholder's digest)."""
    text = HEADER + "assets: {mug: mug.png}\njobs: [{name: j, prompt: x, input_image: ['{asset:mug}']}]\n"
    first = ws.plan(text, files={"mug.png": tiny_png(b"\x01\x02\x03")}).jobs[0].key
    same = ws.plan(text, files={"mug.png": tiny_png(b"\x01\x02\x03")}).jobs[0].key
    other = ws.plan(text, files={"mug.png": tiny_png(b"\x09\x09\x09")}).jobs[0].key
    assert first == same != other


def test_repeat_makes_distinct_jobs_of_one_request(ws: Workspace) -> None:
    """repeat: N gives N jobs with the same request and different keys and paths."""
    plan = ws.plan(HEADER + "jobs: [{name: j, prompt: x, repeat: 3}]\n")
    assert [j.replica for j in plan.jobs] == [0, 1, 2]
    assert len({json.dumps(j.request) for j in plan.jobs}) == 1
    assert len({j.key for j in plan.jobs}) == 3 and len({j.output_path for j in plan.jobs}) == 3


def test_cost_and_duration_quotes(ws: Workspace) -> None:
    """Each job is quoted from the model's pricing; the plan total is their sum."""
    plan = ws.plan(
        HEADER
        + """\
jobs:
  - {name: a, prompt: x}
  - {name: b, prompt: x, duration: 10}
  - {name: c, multi_prompt: [{prompt: one}, {prompt: two, duration: 3}]}
"""
    )
    assert [(j.duration_s, j.cost_usd) for j in plan.jobs] == [
        (5, Decimal("1.120")),
        (10, Decimal("2.240")),
        (8, Decimal("1.792")),
    ]
    assert plan.total_cost_usd == Decimal("5.152")


def test_unpriced_model_has_no_quote(ws: Workspace) -> None:
    """A model without usable pricing quotes None, and so does the plan total."""
    spec = SnapshotCatalog().get(KLING)
    assert spec is not None
    unpriced = ModelSpec.from_api(
        {**spec.raw, "id": "free-video", "pricing": {"method": "time"}}, "free-video"
    )
    ws.catalog = SnapshotCatalog([spec, unpriced])
    plan = ws.plan(HEADER + "jobs: [{name: a, prompt: x}, {name: b, model: free-video, prompt: x}]\n")
    assert [j.cost_usd for j in plan.jobs] == [Decimal("1.120"), None]
    assert plan.total_cost_usd is None


def test_each_job_is_quoted_at_its_own_resolutions_rate(ws: Workspace) -> None:
    """A matrix over resolutions: the 4k jobs take the high-res rate and the 720p ones the base rate,
    whichever comes first (the planner keeps one quote per model, seconds and priced options)."""
    omni = SnapshotCatalog().get("kling-video-o3-omni")
    assert omni is not None
    pricing = {
        "method": "per_video_output_second",
        "cost_per_second": 0.224,
        "cost_per_second_high_res": 0.448,
    }
    ws.catalog = SnapshotCatalog([ModelSpec.from_api({**omni.raw, "pricing": pricing}, omni.id)])
    for order in (["720p", "4k"], ["4k", "720p"]):
        plan = ws.plan(
            "version: 1\nname: t\nmodel: kling-video-o3-omni\n"
            f"matrix: {{r: [{', '.join(order)}]}}\njobs: [{{name: a, prompt: x, resolution: '{{r}}'}}]\n"
        )
        quotes = {job.request["resolution"]: job.cost_usd for job in plan.jobs}
        assert quotes == {"720p": Decimal("1.120"), "4k": Decimal("2.240")}


def test_text_and_unknown_models_are_problems(ws: Workspace) -> None:
    """batchgen runs image and video models only; an unknown id gets a did-you-mean over known ids."""
    spec = SnapshotCatalog().get(KLING)
    assert spec is not None
    chat = ModelSpec.from_api(
        {"id": "chat-model", "endpoint": "/chat/completions", "capabilities": {"output": ["text"]}},
        "chat-model",
    )
    ws.catalog = SnapshotCatalog([spec, chat])
    errors = ws.errors(
        HEADER
        + "jobs: [{name: a, model: chat-model, prompt: x}, {name: b, model: kling-video-o3, prompt: y}]\n"
    )
    assert errors == [
        "m.yaml:4:25: jobs[0].model: 'chat-model' is a text model; batchgen runs image and video models only",
        f"m.yaml:4:66: jobs[1].model: unknown model 'kling-video-o3'\n    hint: did you mean '{KLING}'?",
    ]


def test_image_models_get_png_paths_and_per_image_quotes(ws: Workspace) -> None:
    """An image model's outputs end in .png and are quoted per image."""
    image = ModelSpec.from_api(
        {
            "id": "img",
            "endpoint": "/images/generate",
            "pricing": {"method": "per_image", "cost_per_image": "0.04"},
        },
        "img",
    )
    ws.catalog = SnapshotCatalog([image])
    (job,) = ws.plan("version: 1\nname: t\nmodel: img\njobs: [{name: a, prompt: x}]\n").jobs
    assert job.media_type == "image" and job.output_path.endswith(".png")
    assert (job.cost_usd, job.duration_s) == (Decimal("0.04"), None)


def test_problems_in_many_expanded_jobs_are_reported_once_with_a_count(ws: Workspace) -> None:
    """10,000 jobs with the same bad value make one problem naming the spec and the count."""
    errors = ws.errors(
        HEADER + "matrix: {i: [" + ", ".join(map(str, range(100))) + "]}\n"
        "jobs: [{name: a, prompt: 'take {i}', aspect_ratio: '4:3', repeat: 100}]\n"
    )
    assert errors == [
        'm.yaml:5:52: jobs[0] (a, 10000 jobs): aspect_ratio: "4:3" is not one of "9:16", "1:1", "16:9"'
    ]


def test_validation_problem_is_located_at_its_source(ws: Workspace) -> None:
    """A bad value from defaults points at the defaults line; one from the job at the job's line."""
    errors = ws.errors(
        HEADER
        + """\
defaults:
  aspect_ratio: "4:3"
jobs:
  - name: a
    prompt: x
  - name: b
    prompt: y
    multi_prompt:
      - {prompt: one, duration: 16}
"""
    )
    assert errors == [
        'm.yaml:5:17: jobs[0] (a, replica 0): aspect_ratio: "4:3" is not one of "9:16", "1:1", "16:9"',
        'm.yaml:5:17: jobs[1] (b, replica 0): aspect_ratio: "4:3" is not one of "9:16", "1:1", "16:9"',
        "m.yaml:12:7: jobs[1] (b, replica 0): multi_prompt: Cannot provide both 'prompt' and 'multi_prompt'.\n"
        "    hint: keep one of them",
        "m.yaml:12:7: jobs[1] (b, replica 0): multi_prompt: Total shot duration (16s) exceeds maximum allowed (15s).\n"
        "    hint: the total duration (the sum of the shots, or `duration`) must be 3-15 s",
        "m.yaml:12:33: jobs[1] (b, replica 0): multi_prompt[0].duration: Input should be '1', '2', '3', '4', '5',"
        " '6', '7', '8', '9', '10', '11', '12', '13', '14' or '15'",
    ]


def test_plan_to_json_is_complete_and_serialisable(ws: Workspace) -> None:
    """plan_to_json holds every job's key, request, path, assets and location, and dumps as JSON."""
    plan = ws.plan(
        HEADER + ASSETS + "jobs: [{name: j, prompt: x, input_image: ['{asset:mug}'], repeat: 2}]\n",
        files=FILES,
    )
    data = plan_to_json(plan)
    assert json.loads(json.dumps(data)) == data
    assert (data["name"], data["job_count"], data["total_cost_usd"]) == ("t", 2, "2.240")
    first: dict[str, Any] = data["jobs"][0]
    assert first["key"] == plan.jobs[0].key and first["request"] == plan.jobs[0].request
    assert first["assets"][0]["name"] == "mug" and first["assets"][0]["media_type"] == "image/png"
    assert first["location"] == {"file": "m.yaml", "line": 7, "column": 8}
    assert data["by_model"] == {KLING: 2} and data["by_aspect_ratio"] == {"model default": 2}


def test_each_job_gets_its_readable_name_in_the_plan_and_plan_json(ws: Workspace) -> None:
    """The planner names every job by the one rule (batchgen.naming), as the README's manifest: a
    CSV's product (its tagline follows from it), the job's matrix axis, the take; the constant brand
    left out, and a job without the axis or repeats shows neither. plan.json carries it
    beside the name."""
    plan = ws.plan(
        HEADER
        + """\
vars: {brand: Meadow}
rows: products.csv
jobs:
  - name: hero
    prompt: "{brand} {product}: {tagline}"
    aspect_ratio: "{ratio}"
    matrix: {ratio: ['16:9', '9:16']}
    repeat: 2
  - name: teaser
    prompt: "{product}"
""",
        files={"products.csv": "product,tagline\nmug,Warm mornings\nlamp,Light that stays\n"},
    )
    titles = [job.title for job in plan.jobs]
    assert titles[:4] == ["hero · mug · 16:9 · take 1", "hero · mug · 16:9 · take 2", "hero · mug · 9:16 · take 1", "hero · mug · 9:16 · take 2"]  # fmt: skip
    assert titles[8:] == ["teaser · mug", "teaser · lamp"]
    assert len(set(titles)) == len(titles) == 10
    data = plan_to_json(plan)
    assert [(j["name"], j["title"]) for j in data["jobs"]] == [(j.name, j.title) for j in plan.jobs]


def test_format_plan_shows_counts_progress_cost_and_requests(ws: Workspace) -> None:
    """The human plan lists counts by model and ratio, what is done, the quote, and the first requests."""
    plan = ws.plan(
        HEADER
        + "matrix: {r: ['16:9', '9:16']}\njobs: [{name: j, prompt: x, aspect_ratio: '{r}', repeat: 2}]\n"
    )
    text = format_plan(plan, done_keys=frozenset({plan.jobs[0].key}), show_requests=1)
    lines = text.splitlines()
    assert lines[0] == f"Plan 't' ({ws.root / 'm.yaml'}): 4 jobs, 1 done, 3 to run"
    assert f"    {KLING}  4" in lines
    assert "    16:9  2" in lines and "    9:16  2" in lines
    assert "  cost quote: $4.48 in total, $3.36 to go" in lines
    assert "First 1 request(s) to send:" in lines
    assert (
        f"  #1 j · 16:9 · take 2 -> videos/{plan.jobs[1].output_path}  key {plan.jobs[1].key[:12]}" in lines
    )
    assert '      "aspect_ratio": "16:9"' in lines


def test_plan_is_pure(ws: Workspace, tmp_path: Path) -> None:
    """Planning twice from one loaded manifest gives equal plans (no clock, no randomness, no state)."""
    manifest = load_manifest(
        ws.write(HEADER + "matrix: {s: [1, 2, 3]}\njobs: [{name: j, prompt: 'take {s}', seed: '{s}'}]\n")
    )
    first, second = build_plan(manifest, ws.catalog), build_plan(manifest, ws.catalog)
    assert first == second and plan_to_json(first) == plan_to_json(second)


def test_null_job_field_removes_a_default(ws: Workspace) -> None:
    """A job field set to null drops the default of that name from the request instead of sending null."""
    plan = ws.plan(
        HEADER + "defaults: {negative_prompt: blur, seed: 3}\njobs: [{name: a, prompt: x, seed: null}]\n"
    )
    assert plan.jobs[0].request == {"model": KLING, "negative_prompt": "blur", "prompt": "x"}


def test_shared_template_syntax_errors_are_reported_once(ws: Workspace) -> None:
    """A broken template in defaults is one problem however many jobs use it; an unknown variable names the job."""
    errors = ws.errors(
        HEADER
        + "defaults: {negative_prompt: 'bad {', aspect_ratio: '{ar}'}\n"
        + "jobs: [{name: a, prompt: x}, {name: b, prompt: y}]\n"
    )
    assert errors == [
        "m.yaml:4:29: defaults.negative_prompt: unclosed '{' at character 5: expected {name}, {asset:NAME} or"
        " {asset:$name}; write {{ or }} for a literal brace",
        "m.yaml:4:52: defaults.aspect_ratio: unknown variable 'ar' (for job 'a')\n"
        "    hint: known variables: index, model, name, replica",
        "m.yaml:4:52: defaults.aspect_ratio: unknown variable 'ar' (for job 'b')\n"
        "    hint: known variables: index, model, name, replica",
    ]


def test_the_streamed_plan_json_is_the_same_document(ws: Workspace) -> None:
    """write_plan_json (plan --json, plan.json) parses to exactly plan_to_json, empty plans included."""
    import io

    plan = ws.plan(
        HEADER
        + ASSETS
        + "jobs: [{name: j, prompt: 'x \u2028 \"q\"', input_image: ['{asset:mug}'], repeat: 2}]\n",
        files=FILES,
    )
    out = io.StringIO()
    write_plan_json(plan, out.write)
    assert json.loads(out.getvalue()) == json.loads(json.dumps(plan_to_json(plan)))
    empty = Plan(plan.manifest_path, plan.name, (), None)
    out = io.StringIO()
    write_plan_json(empty, out.write)
    assert json.loads(out.getvalue())["jobs"] == []
