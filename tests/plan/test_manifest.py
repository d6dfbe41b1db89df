"""Loading manifests: YAML with positions, the JSON Schema, assets, CSV rows, located problems."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jsonschema
import pytest

from batchgen.errors import ManifestError
from batchgen.manifest import LocalAsset, UrlAsset, load_manifest, manifest_schema
from tests.plan.conftest import HEADER, KLING, Workspace, tiny_png


def load_errors(ws: Workspace, text: str, files: dict[str, bytes | str] | None = None) -> list[str]:
    """The problems of loading `text`: raised by load_manifest, or by build_plan with the plan's when
    they leave the rest plannable (fails if there is none)."""
    with pytest.raises(ManifestError) as caught:
        ws.plan(text, files)
    return [str(p) for p in caught.value.problems]


def test_loads_a_complete_manifest(ws: Workspace) -> None:
    """Every section is read into the Manifest, run settings as written, upload with defaults."""
    manifest = ws.load(
        HEADER
        + """\
target_namespace: acme
defaults: {aspect_ratio: "16:9", num_generations: 1}
vars: {brand: Acme}
matrix: {seed: [1, 2]}
jobs:
  - name: hero
    prompt: x
    repeat: 2
    vars: {a: 1}
    matrix: {b: [x, y]}
    num_generations: 1
output: {pattern: "{name}-{key}"}
run: {concurrency: 3, timeouts: {generation_s: 600}}
upload: {namespace: acme, repo: assets}
"""
    )
    assert manifest.name == "t" and manifest.model == KLING and manifest.target_namespace == "acme"
    assert manifest.defaults == {"aspect_ratio": "16:9"}  # num_generations: 1 is dropped
    assert manifest.matrix == {"seed": (1, 2)}
    (job,) = manifest.jobs
    assert (job.name, job.repeat, job.fields) == ("hero", 2, {"prompt": "x"})
    assert job.matrix == {"b": ("x", "y")} and job.vars == {"a": 1}
    assert (job.location.line, job.location.column) == (9, 5)
    assert manifest.output_pattern == "{name}-{key}"
    assert manifest.run == {"concurrency": 3, "timeouts": {"generation_s": 600}}
    assert manifest.upload == {
        "namespace": "acme",
        "repo": "assets",
        "branch": "main",
        "prefix": "batchgen-assets",
        "create": False,
    }


def test_positions_map_any_field_path_to_line_and_column(ws: Workspace) -> None:
    """Every value and key path (even inside lists of mappings) has its 1-based line and column."""
    manifest = ws.load(
        HEADER
        + """\
jobs:
  - name: a
    prompt: x
  - name: b
    multi_prompt:
      - {prompt: one, duration: 5}
      - prompt: two
        duration: 6
"""
    )
    at = manifest.positions.at
    second_shot = at(("jobs", 1, "multi_prompt", 1, "duration"))
    assert (second_shot.file, second_shot.line, second_shot.column) == ("m.yaml", 11, 19)
    first_shot = at(("jobs", 1, "multi_prompt", 0, "duration"))
    assert (first_shot.line, first_shot.column) == (9, 33)
    assert (
        at(("jobs", 1, "multi_prompt"), key=True).line,
        at(("jobs", 1, "multi_prompt"), key=True).column,
    ) == (8, 5)
    assert at(("jobs", 1, "nonexistent", 3)).line == 7  # falls back to the nearest written ancestor
    assert (at(("jobs", 0)).line, at(("jobs", 0)).column) == (5, 5)


def test_all_problems_are_reported_together_and_sorted(ws: Workspace) -> None:
    """Schema and semantic problems from everywhere in the file come in one error, in line order."""
    errors = load_errors(
        ws,
        """\
version: 1
name: ok
model: m
run: {concurrency: 0}
jobs:
  - name: a/b
    repeat: 0
  - name: c
    num_generations: 3
""",
    )
    assert [e.split(": ")[0] for e in errors] == ["m.yaml:4:20", "m.yaml:6:11", "m.yaml:7:13", "m.yaml:9:22"]
    assert "use `repeat: 3`" in errors[-1]


def test_yaml_syntax_error_is_located(ws: Workspace) -> None:
    """A YAML syntax error becomes one problem at the parser's line and column."""
    assert load_errors(ws, "version: 1\njobs: [a, b\n") == [
        "m.yaml:3:1: invalid YAML: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence on line 2)"
    ]


def test_duplicate_keys_are_refused_at_the_second_key(ws: Workspace) -> None:
    """PyYAML keeps the last of two equal keys silently; batchgen reports the duplicate."""
    errors = load_errors(ws, HEADER + "jobs:\n  - name: a\n    prompt: x\n    prompt: y\n")
    assert errors[0].startswith("m.yaml:7:5: jobs[0].prompt: duplicate key (first written on line 6)")


def test_unknown_keys_get_a_did_you_mean_hint(ws: Workspace) -> None:
    """A misspelt known key is reported at the key with the closest correct spelling."""
    errors = load_errors(ws, HEADER + "jobs: [{name: a, prompt: x}]\noutput: {patern: x}\n")
    assert errors == ["m.yaml:5:10: output.patern: unknown key 'patern'\n    hint: did you mean 'pattern'?"]


def test_unquoted_ratio_stays_a_string(ws: Workspace) -> None:
    """YAML 1.1 reads 16:9 as the base-60 number 969; batchgen keeps the text "16:9"."""
    manifest = ws.load(HEADER + "defaults: {aspect_ratio: 16:9}\njobs: [{name: a, prompt: x}]\n")
    assert manifest.defaults == {"aspect_ratio": "16:9"}


def test_anchors_aliases_and_merge_keys(ws: Workspace) -> None:
    """Aliases are expanded and `<<` merges mappings, explicit keys winning."""
    manifest = ws.load(
        HEADER
        + """\
jobs:
  - &base {name: a, prompt: x, duration: 5}
  - <<: *base
    name: b
    duration: 10
"""
    )
    assert manifest.jobs[1].name == "b"
    assert manifest.jobs[1].fields == {"duration": 10, "prompt": "x"}


def test_timestamps_are_kept_as_text(ws: Workspace) -> None:
    """A date-like value stays the string as written (JSON has no date type)."""
    manifest = ws.load(HEADER + "vars: {day: 2026-03-21}\njobs: [{name: a, prompt: x}]\n")
    assert manifest.vars == {"day": "2026-03-21"}


def test_non_finite_numbers_are_refused(ws: Workspace) -> None:
    """.inf and .nan cannot be sent as JSON."""
    errors = load_errors(ws, HEADER + "vars: {x: .inf}\njobs: [{name: a, prompt: x}]\n")
    assert errors == ["m.yaml:4:11: vars.x: .inf is not a finite number"]


def test_an_escaped_surrogate_pair_is_one_character(ws: Workspace) -> None:
    """JSON's way to escape an emoji ("\\ud83d\\ude00") gives that emoji
    (PyYAML keeps the two halves apart, and UTF-8 cannot write either on its own)."""
    manifest = ws.load(HEADER + 'vars: {x: "a \\ud83d\\ude00 b"}\njobs: [{name: a, prompt: "{x}"}]\n')
    assert manifest.vars == {"x": "a \U0001f600 b"}


def test_missing_manifest_file(tmp_path: Path) -> None:
    """An unreadable manifest is one problem naming the file."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "nope.yaml", file="nope.yaml")
    assert str(caught.value) == "nope.yaml: cannot read the manifest: not found"


def test_local_asset_is_read_and_fingerprinted(ws: Workspace) -> None:
    """A local asset records its absolute path, sha256, size and media type; URLs stay URLs."""
    png = tiny_png()
    manifest = ws.load(
        HEADER
        + "assets:\n  mug: refs/mug.png\n  web: https://x.test/a.png\n  inline: 'data:image/png;base64,AAAA'\n"
        "jobs: [{name: a, prompt: x}]\n",
        {"refs/mug.png": png},
    )
    mug = manifest.assets["mug"]
    assert isinstance(mug, LocalAsset)
    assert mug.path == (ws.root / "refs/mug.png").resolve()
    assert (mug.sha256, mug.size, mug.media_type) == (hashlib.sha256(png).hexdigest(), len(png), "image/png")
    assert mug.placeholder == "batchgen-asset:sha256:" + mug.sha256
    assert manifest.assets["web"] == UrlAsset("web", "https://x.test/a.png")
    assert isinstance(manifest.assets["inline"], UrlAsset)


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        (b"\xff\xd8\xff\xe0" + b"\x00" * 16, "image/jpeg"),
        (b"GIF89a" + b"\x00" * 16, "image/gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
    ],
)
def test_image_types_are_recognised_by_magic_bytes(ws: Workspace, data: bytes, media_type: str) -> None:
    """JPEG, GIF and WebP are recognised by their first bytes, whatever the file is called."""
    manifest = ws.load(HEADER + "assets: {a: pic.bin}\njobs: [{name: a, prompt: x}]\n", {"pic.bin": data})
    asset = manifest.assets["a"]
    assert isinstance(asset, LocalAsset) and asset.media_type == media_type


def test_asset_problems_name_the_file_and_the_line(ws: Workspace) -> None:
    """Missing and non-image asset files are problems at their `assets:` line."""
    errors = load_errors(
        ws,
        HEADER + "assets:\n  a: gone.png\n  b: text.png\njobs: [{name: a, prompt: x}]\n",
        {"text.png": "hello"},
    )
    assert errors == [
        "m.yaml:5:6: assets.a: cannot read asset file 'gone.png': not found",
        "m.yaml:6:6: assets.b: asset file 'text.png' is not a PNG, JPEG, WebP or GIF image",
    ]


def test_csv_rows_are_read_in_file_order(ws: Workspace) -> None:
    """The header names the variables; each non-blank row is one set of string values."""
    manifest = ws.load(
        HEADER + "rows: r.csv\njobs: [{name: a, prompt: '{p}'}]\n",
        {"r.csv": '\ufeffp,t\nmug,"a, b"\n\nbag,"multi\nline"\n'},
    )
    rows = manifest.rows
    assert rows is not None and rows.header == ("p", "t")
    assert rows.rows == ({"p": "mug", "t": "a, b"}, {"p": "bag", "t": "multi\nline"})
    assert rows.lines == (2, 5)


def test_csv_problems_are_located_in_the_csv(ws: Workspace) -> None:
    """A ragged row is reported at its CSV line, naming the CSV file."""
    errors = load_errors(
        ws, HEADER + "jobs: [{name: a, prompt: '{p}', rows: r.csv}]\n", {"r.csv": "p,q\n1,2\n3\n"}
    )
    assert errors == [
        "r.csv:3: row 2: has 1 cell, but the header has 2 cells\n    hint: quote cells that contain commas"
    ]


def test_many_ragged_rows_are_capped(ws: Workspace) -> None:
    """Only the first 10 bad rows are listed, then a count of the rest."""
    csv_text = "p,q\n" + "x\n" * 15
    errors = load_errors(ws, HEADER + "rows: r.csv\njobs: [{name: a, prompt: x}]\n", {"r.csv": csv_text})
    assert len(errors) == 11
    assert errors[-1] == "r.csv: …and 5 more rows with the wrong number of cells"


def test_schema_is_valid_draft_2020_12_and_documents_defaults() -> None:
    """manifest_schema() is a valid 2020-12 schema and states the run defaults."""
    schema = manifest_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    run = schema["properties"]["run"]["properties"]
    assert (run["concurrency"]["default"], run["downloads"]["default"], run["retries"]["default"]) == (
        8,
        4,
        2,
    )
    assert json.loads(json.dumps(schema)) == schema


def test_job_fields_pass_through_unknown_parameters(ws: Workspace) -> None:
    """Keys the manifest schema does not know in a job are request fields for the model."""
    manifest = ws.load(HEADER + "jobs: [{name: a, prompt: x, shot_type: customize}]\n")
    assert manifest.jobs[0].fields == {"prompt": "x", "shot_type": "customize"}
