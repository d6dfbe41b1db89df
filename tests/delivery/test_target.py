"""Delivery targets: `NS/NAME[@BRANCH][:PATH]`, the manifest's `deliver:`, and the path template."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen.delivery.target import DeliveryTarget, path_problem, render_path, template_variables
from batchgen.errors import ManifestError
from batchgen.manifest import load_manifest

VARS = {"name": "spring-campaign", "season": "ss26", "take": 2}


def test_a_flag_gives_repository_branch_and_rendered_path() -> None:
    target = DeliveryTarget.parse("meadow/campaigns@review:drops/{season}/{name}", VARS)
    assert (target.namespace, target.repo, target.branch) == ("meadow", "campaigns", "review")
    assert target.path == "drops/ss26/spring-campaign"
    assert target.describe() == "meadow/campaigns@review:drops/ss26/spring-campaign"
    assert target.repo_path("videos/hero/16x9.mp4") == "drops/ss26/spring-campaign/videos/hero/16x9.mp4"


def test_a_flag_without_branch_or_path_takes_the_defaults_given() -> None:
    target = DeliveryTarget.parse("meadow/campaigns", VARS, default_path="campaigns/{name}", create=True)
    assert (target.branch, target.path, target.create) == ("main", "campaigns/spring-campaign", True)


@pytest.mark.parametrize(
    "text",
    ["meadow", "meadow/", "/campaigns", "a/b/c", "meadow/campaigns@", "meadow/campaigns:", "me adow/x"],
)
def test_a_malformed_flag_is_refused_with_the_expected_shape(text: str) -> None:
    with pytest.raises(ValueError, match=r"NAMESPACE/NAME|NS/NAME"):
        DeliveryTarget.parse(text, VARS)


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("/abs/{name}", "is absolute"),
        ("../{name}", "'..' segment"),
        ("a/./b", "'.' segment"),
        ("a//b", "empty segment"),
        ("a\\b", "contains"),
        ("{nope}", "not defined"),
        ("{na me}", "not a valid path template"),
        ("{", "not a valid path template"),
        ("x/{season}/", "empty segment"),
    ],
)
def test_an_unsafe_or_unknown_path_is_refused(template: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        render_path(template, VARS)


def test_a_value_cannot_smuggle_a_parent_segment() -> None:
    with pytest.raises(ValueError, match=r"which gives '\.\./x'"):
        render_path("{up}/x", {"up": ".."})


def test_braces_escape_and_scalars_render() -> None:
    assert render_path("{{lit}}/{take}", VARS) == "{lit}/2"
    assert path_problem("campaigns/ok") is None
    assert template_variables("n", {"a": 1, "l": [1], "m": {}}) == {"a": 1, "name": "n"}


def _manifest(tmp_path: Path, deliver: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(
        "version: 1\nname: spring\nmodel: kling-video-o3-pro-reference-to-video\nvars: {season: ss26}\n"
        f"deliver: {deliver}\njobs: [{{name: a, prompt: hi}}]\n",
        encoding="utf-8",
    )
    return path


def test_the_manifest_keeps_deliver_with_its_defaults(tmp_path: Path) -> None:
    manifest = load_manifest(_manifest(tmp_path, "{repo: meadow/campaigns}"))
    assert manifest.deliver == {
        "repo": "meadow/campaigns",
        "branch": "main",
        "path": "{name}",
        "create": False,
    }
    target = DeliveryTarget.from_manifest(manifest.deliver, template_variables(manifest.name, manifest.vars))
    assert target.path == "spring"


@pytest.mark.parametrize(
    ("deliver", "field", "says"),
    [
        ('{repo: meadow/c, path: "../{name}"}', "deliver.path", "'..' segment"),
        ('{repo: meadow/c, path: "x/{seasn}"}', "deliver.path", "{seasn}"),
        ("{repo: meadow}", "deliver.repo", "does not match"),
        ("{repo: meadow/c, mode: fast}", "deliver.mode", "unknown key"),
    ],
)
def test_a_bad_deliver_block_is_a_located_problem(
    tmp_path: Path, deliver: str, field: str, says: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(_manifest(tmp_path, deliver))
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (5, field)
    assert says in problem.message
