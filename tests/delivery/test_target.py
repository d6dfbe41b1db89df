"""Delivery targets: `NS/NAME[@BRANCH][:PATH]`, the manifest's `deliver:`, the path template, and the
rules for names, branches and paths that `batchgen.target` is the one place of."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from batchgen.config import UploadTarget
from batchgen.errors import ManifestError
from batchgen.manifest import load_manifest, manifest_schema
from batchgen.target import (
    BRANCH_PATTERN,
    NAME_PATTERN,
    REPO_PATTERN,
    DeliveryTarget,
    branch_problem,
    name_problem,
    parse_branch,
    parse_repo,
    path_problem,
    render_path,
    repo_problem,
    template_variables,
)

VARS = {"name": "spring-campaign", "season": "ss26", "take": 2}
NAME_RULE = "Oxen names are 2 or more letters, digits, '_', '.' or '-', starting with a letter or digit"

# -- the rules, table by table ------------------------------------------------------------------------

GOOD_NAMES = ["meadow", "campaigns", "ab", "a1", "1a", "x.y", "team-2", "my_repo", "a..", "A_.-9"]
BAD_NAMES = [
    (".", "is a dot segment that a URL resolves away"),
    ("..", "is a dot segment that a URL resolves away"),
    ("", "is empty"),
    ("a", "is 1 character"),
    ("-x", "starts with '-'"),
    (".x", "starts with '.'"),
    ("_x", "starts with '_'"),
    ("a b", "contains U+0020 (SPACE)"),
    ("a/b", "contains '/'"),
    ("a@b", "contains '@'"),
    ("a%2f", "contains '%'"),
    ("é1", "contains 'é'"),
    ("a\u202eb", "contains U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("ab\n", "contains U+000A"),
]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_a_name_oxen_takes_is_accepted(name: str) -> None:
    """Every name of GOOD_NAMES passes as a namespace, a repository name and in `NS/NAME`."""
    assert name_problem(name) is None
    assert repo_problem(f"{name}/{name}") is None
    assert parse_repo(f"meadow/{name}") == ("meadow", name)


@pytest.mark.parametrize(("name", "reason"), BAD_NAMES)
def test_a_name_oxen_refuses_says_why_and_the_rule(name: str, reason: str) -> None:
    """A name Oxen refuses gets its reason first and Oxen's naming rule last."""
    problem = name_problem(name)
    assert problem is not None and problem.startswith(reason) and problem.endswith(NAME_RULE)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("meadow", "is not NAMESPACE/NAME (e.g. meadow/campaigns)"),
        ("meadow/", "is not NAMESPACE/NAME"),
        ("/campaigns", "is not NAMESPACE/NAME"),
        ("a/b/c", "is not NAMESPACE/NAME"),
        ("../campaigns", "has the namespace '..', which is a dot segment"),
        ("./campaigns", "has the namespace '.', which is a dot segment"),
        ("meadow/..", "has the repository name '..', which is a dot segment"),
        ("meadow/.", "has the repository name '.', which is a dot segment"),
        ("m/campaigns", "has the namespace 'm', which is 1 character"),
        ("meadow/c", "has the repository name 'c', which is 1 character"),
        ("me adow/x1", "has the namespace 'me adow', which contains U+0020 (SPACE)"),
    ],
)
def test_a_repository_that_is_not_two_good_names_is_refused(text: str, says: str) -> None:
    """`NS/NAME` with a missing part, a third part or a bad name says which part is wrong, and parse_repo
    raises it."""
    problem = repo_problem(text)
    assert problem is not None and problem.startswith(says)
    with pytest.raises(ValueError, match=re.escape(f"the repository {text!r} {says}")):
        parse_repo(text)


GOOD_BRANCHES = [
    "main",
    "review/client-a",
    "a/b/c",
    "v1.2",
    "release-2026.05",
    "feature/x_y",
    "x.locks",
    "lock/x",
    "Ünïcode",
]
BAD_BRANCHES = [
    ("..", "has a '..' part: a dot segment"),
    (".", "has a '.' part: a dot segment"),
    ("x/..", "has a '..' part"),
    ("./x", "has a '.' part"),
    ("..%2f..%2fx", "contains '%', which does not survive a URL"),
    ("%", "contains '%'"),
    ("a+b", "contains '+', which does not survive a URL"),
    ("a\u202eb", "contains U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("a\u200bb", "contains U+200B (ZERO WIDTH SPACE)"),
    ("a\u2028b", "contains U+2028 (LINE SEPARATOR)"),
    ("a\x7fb", "contains U+007F (a control character)"),
    ("a b", "contains U+0020 (SPACE)"),
    ("a\tb", "contains U+0009"),
    ("-x", "has a part starting with '-' ('-x')"),
    ("x/-y", "has a part starting with '-' ('-y')"),
    ("x.lock", "has a part ending with '.lock' ('x.lock')"),
    ("x.lock/y", "has a part ending with '.lock'"),
    ("x.", "has a part ending with '.' ('x.')"),
    ("a//b", "has an empty part ('//')"),
    ("/a", "starts or ends with '/'"),
    ("a/", "starts or ends with '/'"),
    ("", "is empty"),
    *((f"a{c}b", f"contains {c!r}") for c in "@:\\?#~^[*"),
]


@pytest.mark.parametrize("branch", GOOD_BRANCHES)
def test_a_branch_name_is_accepted(branch: str) -> None:
    """Every branch of GOOD_BRANCHES (slashes included) has no problem and parses to itself."""
    assert branch_problem(branch) is None
    assert parse_branch(branch) == branch


@pytest.mark.parametrize(("branch", "reason"), BAD_BRANCHES)
def test_a_bad_branch_name_says_why(branch: str, reason: str) -> None:
    """A bad branch says why, ends with what branch names look like, and parse_branch raises it."""
    problem = branch_problem(branch)
    assert problem is not None and problem.startswith(reason), problem
    assert problem.endswith("branch names look like main or review/client-a")
    with pytest.raises(ValueError, match=re.escape(f"the branch {branch!r} {reason}")):
        parse_branch(branch)


GOOD_PATHS = ["campaigns/ok", "spring", "a.b/c", "drops/ss26/x-y_z", "review/client-a", "x/.hidden", "a b"]
BAD_PATHS = [
    ("..%2f..%2fx", "contains '%': a percent-escape such as '..%2f..%2fx' is not decoded"),
    ("a%20b", "contains '%'"),
    ("%", "contains '%'"),
    ("a+b", "contains '+', which does not survive a URL"),
    ("a\u202eb", "contains U+202E (RIGHT-TO-LEFT OVERRIDE): a path may not hold control or format"),
    ("a\u200bb", "contains U+200B (ZERO WIDTH SPACE)"),
    ("a\u2029b", "contains U+2029 (PARAGRAPH SEPARATOR)"),
    ("a\x00b", "contains U+0000 (a control character)"),
    ("a\x85b", "contains U+0085"),
    ("a\\b", "contains '\\\\'"),
    ("..", "has a '..' segment"),
    (".", "has a '.' segment"),
    ("x/..", "has a '..' segment"),
    ("x/./y", "has a '.' segment"),
    ("a//b", "has an empty segment"),
    ("x/", "has an empty segment"),
    ("/abs", "is absolute"),
    ("", "is empty"),
    (" a/b", "has a segment with spaces at its ends"),
]


@pytest.mark.parametrize("path", GOOD_PATHS)
def test_a_plain_relative_path_is_accepted(path: str) -> None:
    """A plain relative directory has no problem and renders to itself."""
    assert path_problem(path) is None
    assert render_path(path, VARS) == path


@pytest.mark.parametrize(("path", "reason"), BAD_PATHS)
def test_an_unsafe_path_says_why(path: str, reason: str) -> None:
    """An unsafe delivery path says why, and render_path raises the same reason naming the path."""
    problem = path_problem(path)
    assert problem is not None and problem.startswith(reason), problem
    with pytest.raises(ValueError, match=re.escape(f"the delivery path {path!r} {reason}")):
        render_path(path, VARS)


def test_the_schema_patterns_are_the_rules_for_what_they_can_express() -> None:
    """The manifest schema's patterns (what editors flag) are the ones target.py states, and agree
    with the rules on every table entry: all an editor refuses is refused, and what the rules refuse
    the pattern refuses too, but for non-ASCII format characters (which a pattern does not name)."""
    properties = manifest_schema()["properties"]
    deliver, upload = properties["deliver"]["properties"], properties["upload"]["properties"]
    assert deliver["repo"]["pattern"] == REPO_PATTERN
    assert deliver["branch"]["pattern"] == upload["branch"]["pattern"] == BRANCH_PATTERN
    assert upload["namespace"]["pattern"] == upload["repo"]["pattern"] == NAME_PATTERN
    tables = [
        (NAME_PATTERN, name_problem, GOOD_NAMES + [n for n, _ in BAD_NAMES]),
        (BRANCH_PATTERN, branch_problem, GOOD_BRANCHES + [b for b, _ in BAD_BRANCHES]),
    ]
    for pattern, problem_of, values in tables:
        for value in values:
            matches = re.search(pattern, value) is not None and not value.endswith("\n")
            if problem_of(value) is None:
                assert matches, value
            elif value.isascii():
                assert not matches, value
    assert re.search(REPO_PATTERN, "meadow/campaigns") and not re.search(REPO_PATTERN, "meadow/..")


# -- `NS/NAME[@BRANCH][:PATH]` ----------------------------------------------------------------------


def test_a_flag_gives_repository_branch_and_rendered_path() -> None:
    """`--deliver NS/NAME@BRANCH:PATH` gives the repository, the branch and the path rendered over the
    variables."""
    target = DeliveryTarget.parse("meadow/campaigns@review:drops/{season}/{name}", VARS)
    assert (target.namespace, target.repo, target.branch) == ("meadow", "campaigns", "review")
    assert target.path == "drops/ss26/spring-campaign"
    assert target.describe() == "meadow/campaigns@review:drops/ss26/spring-campaign"
    assert target.repo_path("videos/hero/16x9.mp4") == "drops/ss26/spring-campaign/videos/hero/16x9.mp4"


@pytest.mark.parametrize(
    ("text", "branch", "path"),
    [
        ("meadow/campaigns@review/client-a:drops/{name}", "review/client-a", "drops/spring-campaign"),
        ("meadow/campaigns@a/b/c", "a/b/c", "spring-campaign"),
        ("meadow/campaigns:x/{season}", "main", "x/ss26"),
    ],
)
def test_a_flag_branch_may_hold_slashes(text: str, branch: str, path: str) -> None:
    """In the flag, a branch may hold '/' and is cut at the first ':'; without a branch it is `main`."""
    target = DeliveryTarget.parse(text, VARS)
    assert (target.namespace, target.repo, target.branch, target.path) == (
        "meadow",
        "campaigns",
        branch,
        path,
    )


def test_a_flag_without_branch_or_path_takes_the_defaults_given() -> None:
    """A bare `NS/NAME` takes branch `main`, the default path given (rendered) and the `create` given."""
    target = DeliveryTarget.parse("meadow/campaigns", VARS, default_path="campaigns/{name}", create=True)
    assert (target.branch, target.path, target.create) == ("main", "campaigns/spring-campaign", True)


@pytest.mark.parametrize(
    "text",
    ["meadow", "meadow/", "/campaigns", "a/b/c", "meadow/campaigns@", "meadow/campaigns:", "meadow/x/y@b"],
)
def test_a_malformed_flag_is_refused_with_the_expected_shape(text: str) -> None:
    """A flag that is not `NS/NAME[@BRANCH][:PATH]` (or ends at '@' or ':') is refused naming that shape."""
    with pytest.raises(ValueError, match=r"NAMESPACE/NAME|NS/NAME"):
        DeliveryTarget.parse(text, VARS)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("meadow/..", "the repository 'meadow/..' has the repository name '..', which is a dot segment"),
        ("../campaigns", "the repository '../campaigns' has the namespace '..'"),
        ("./campaigns@main", "has the namespace '.'"),
        ("meadow/c", "has the repository name 'c', which is 1 character"),
        ("me adow/x1", "contains U+0020 (SPACE)"),
        ("meadow/campaigns@..", "the branch '..' has a '..' part"),
        ("meadow/campaigns@.", "the branch '.' has a '.' part"),
        ("meadow/campaigns@x/..", "the branch 'x/..' has a '..' part"),
        ("meadow/campaigns@-x", "the branch '-x' has a part starting with '-'"),
        ("meadow/campaigns@x.lock", "the branch 'x.lock' has a part ending with '.lock'"),
        ("meadow/campaigns@a%2fb", "the branch 'a%2fb' contains '%'"),
        ("meadow/campaigns@a\u202eb:x", "the branch 'a\\u202eb' contains U+202E"),
        ("meadow/campaigns@a b", "the branch 'a b' contains U+0020 (SPACE)"),
        ("meadow/campaigns@a//b", "has an empty part"),
        ("meadow/campaigns:..%2f..%2fx", "the delivery path '..%2f..%2fx' contains '%'"),
        ("meadow/campaigns:a\u202eb", "the delivery path 'a\\u202eb' contains U+202E"),
        ("meadow/campaigns:x/..", "the delivery path 'x/..' has a '..' segment"),
        ("meadow/campaigns:a+b", "the delivery path 'a+b' contains '+'"),
    ],
)
def test_a_flag_with_a_bad_name_branch_or_path_is_refused(text: str, says: str) -> None:
    """A dot, short or spaced name, a bad branch part, or a path with '%', '+', '..' or a format character is
    refused, saying which."""
    with pytest.raises(ValueError, match=re.escape(says)):
        DeliveryTarget.parse(text, VARS)


def test_a_flag_with_several_bad_parts_names_them_all() -> None:
    """A flag wrong in its repository, branch and path gets one message naming all three problems."""
    with pytest.raises(ValueError) as caught:
        DeliveryTarget.parse("team/x@y/..:../up", VARS)
    assert str(caught.value).split("; also, ") == [
        f"the repository 'team/x' has the repository name 'x', which is 1 character: {NAME_RULE}",
        "the branch 'y/..' has a '..' part: a dot segment that a URL resolves away (requests would go to "
        "another endpoint); branch names look like main or review/client-a",
        "the delivery path '../up' has a '..' segment",
    ]


def test_from_manifest_applies_the_same_rules() -> None:
    """DeliveryTarget.from_manifest accepts a good `deliver:` and refuses a bad repository or branch by the
    flag's rules."""
    good = {"repo": "meadow/campaigns", "branch": "review/client-a", "path": "x/{name}"}
    assert DeliveryTarget.from_manifest(good, VARS).branch == "review/client-a"
    for bad, says in [({"repo": "meadow/.."}, "repository name '..'"), ({"branch": "x/.."}, "'..' part")]:
        with pytest.raises(ValueError, match=re.escape(says)):
            DeliveryTarget.from_manifest({**good, **bad}, VARS)


# -- `--upload-repo NS/REPO[@BRANCH]` -----------------------------------------------------------------


def test_the_upload_repository_takes_a_branch_with_slashes() -> None:
    """`--upload-repo NS/NAME@a/b` keeps the slashed branch; without '@' the branch is `main`."""
    target = UploadTarget.parse("acme/assets@review/client-a")
    assert (target.namespace, target.repo, target.branch) == ("acme", "assets", "review/client-a")
    assert UploadTarget.parse("acme/assets").branch == "main"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("justone", "upload repository must be 'namespace/repo[@branch]'"),
        ("a/b/c", "upload repository must be 'namespace/repo[@branch]'"),
        ("acme/..", "upload repository 'acme/..' has the repository name '..', which is a dot segment"),
        ("../assets", "upload repository '../assets' has the namespace '..'"),
        ("acme/.@main", "has the repository name '.'"),
        ("x/assets", "has the namespace 'x', which is 1 character"),
        ("acme/assets@..", "upload branch '..' has a '..' part"),
        ("acme/assets@x/../y", "upload branch 'x/../y' has a '..' part"),
        ("acme/assets@a%2fb", "upload branch 'a%2fb' contains '%'"),
        ("acme/assets@-x", "upload branch '-x' has a part starting with '-'"),
    ],
)
def test_a_bad_upload_repository_is_refused(text: str, says: str) -> None:
    """A malformed `--upload-repo`, a bad name or a bad branch is refused, saying which."""
    with pytest.raises(ValueError, match=re.escape(says)):
        UploadTarget.parse(text)


# -- the path template --------------------------------------------------------------------------------


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
    """render_path refuses an absolute path, a dot or empty segment, a backslash, an unknown variable and a
    malformed field."""
    with pytest.raises(ValueError, match=problem):
        render_path(template, VARS)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("..", r"which gives '\.\./x'\) has a '\.\.' segment"),
        ("..%2f..", r"which gives '\.\.%2f\.\./x'\) contains '%'"),
        ("a\u202eb", r"which gives 'a\\u202eb/x'\) contains U\+202E"),
    ],
)
def test_a_value_cannot_smuggle_a_bad_segment(value: str, says: str) -> None:
    """A variable whose value holds '..', a percent-escape or U+202E is refused, showing the path it gives."""
    with pytest.raises(ValueError, match=says):
        render_path("{up}/x", {"up": value})


def test_braces_escape_and_scalars_render() -> None:
    """`{{`/`}}` are literal braces, a number renders as text, and only scalar vars (and `name`) are template
    variables."""
    assert render_path("{{lit}}/{take}", VARS) == "{lit}/2"
    assert path_problem("campaigns/ok") is None
    assert template_variables("n", {"a": 1, "l": [1], "m": {}}) == {"a": 1, "name": "n"}


# -- the manifest's `deliver:` and `upload:` ------------------------------------------------------------


def _manifest(tmp_path: Path, deliver: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(
        "version: 1\nname: spring\nmodel: kling-video-o3-pro-reference-to-video\nvars: {season: ss26}\n"
        f"deliver: {deliver}\njobs: [{{name: a, prompt: hi}}]\n",
        encoding="utf-8",
    )
    return path


def test_the_manifest_keeps_deliver_with_its_defaults(tmp_path: Path) -> None:
    """A manifest's `deliver: {repo: ...}` is kept with branch, path and create filled in; its path renders to
    the run's name."""
    manifest = load_manifest(_manifest(tmp_path, "{repo: meadow/campaigns}"))
    assert manifest.deliver == {
        "repo": "meadow/campaigns",
        "branch": "main",
        "path": "{name}",
        "create": False,
    }
    target = DeliveryTarget.from_manifest(manifest.deliver, template_variables(manifest.name, manifest.vars))
    assert target.path == "spring"


def test_the_manifest_takes_a_branch_with_slashes(tmp_path: Path) -> None:
    """A manifest's `deliver.branch` may hold '/'."""
    manifest = load_manifest(_manifest(tmp_path, "{repo: meadow/campaigns, branch: review/client-a}"))
    assert manifest.deliver is not None and manifest.deliver["branch"] == "review/client-a"


@pytest.mark.parametrize(
    ("deliver", "field", "says"),
    [
        ('{repo: meadow/cc, path: "../{name}"}', "deliver.path", "'..' segment"),
        ('{repo: meadow/cc, path: "x/{seasn}"}', "deliver.path", "{seasn}"),
        ("{repo: meadow}", "deliver.repo", "is not NAMESPACE/NAME"),
        ("{repo: meadow/cc, mode: fast}", "deliver.mode", "unknown key"),
        ("{repo: 42}", "deliver.repo", "expected a string"),
    ],
)
def test_a_bad_deliver_block_is_a_located_problem(
    tmp_path: Path, deliver: str, field: str, says: str
) -> None:
    """A bad `deliver:` path, variable, repository, key or type is one problem located at its line and
    field."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(_manifest(tmp_path, deliver))
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (5, field)
    assert says in problem.message


# Each bad value, written as a double-quoted YAML scalar on its own line (the YAML escapes \u202e).
BAD_FIELDS = [
    ("deliver", "repo", "meadow/..", "the repository 'meadow/..' has the repository name '..'"),
    ("deliver", "repo", "../campaigns", "has the namespace '..'"),
    ("deliver", "repo", "./campaigns", "has the namespace '.'"),
    ("deliver", "repo", "meadow/c", "has the repository name 'c', which is 1 character"),
    ("deliver", "repo", "-x/campaigns", "has the namespace '-x', which starts with '-'"),
    ("deliver", "branch", "..", "the branch '..' has a '..' part"),
    ("deliver", "branch", ".", "the branch '.' has a '.' part"),
    ("deliver", "branch", "x/..", "the branch 'x/..' has a '..' part"),
    ("deliver", "branch", "-x", "the branch '-x' has a part starting with '-'"),
    ("deliver", "branch", "x.lock", "has a part ending with '.lock'"),
    ("deliver", "branch", "a b", "contains U+0020 (SPACE)"),
    ("deliver", "branch", "%", "the branch '%' contains '%'"),
    ("deliver", "branch", "a\\u202eb", "the branch 'a\\u202eb' contains U+202E"),
    ("deliver", "path", "..%2f..%2fx", "the delivery path '..%2f..%2fx' contains '%'"),
    ("deliver", "path", "a\\u202eb", "the delivery path 'a\\u202eb' contains U+202E"),
    ("deliver", "path", "x/\\u200b", "contains U+200B (ZERO WIDTH SPACE)"),
    ("deliver", "path", "drops/{name}/..", "has a '..' segment"),
    ("deliver", "path", "a+{name}", "contains '+'"),
    ("upload", "namespace", ".", "the namespace '.' is a dot segment"),
    ("upload", "namespace", "a", "the namespace 'a' is 1 character"),
    ("upload", "repo", "..", "the repository name '..' is a dot segment"),
    ("upload", "repo", "", "the repository name '' is empty"),
    ("upload", "branch", "x/..", "the branch 'x/..' has a '..' part"),
    ("upload", "branch", "a\\u202eb", "contains U+202E"),
    ("upload", "prefix", "refs/..", "the upload prefix 'refs/..' has a '..' segment"),
    ("upload", "prefix", "..%2fx", "contains '%'"),
]


def manifest_with(tmp_path: Path, section: str, key: str, value: str) -> tuple[Path, int, int]:
    """A valid manifest but for `section.key: "value"`; the file, and the line and column of the value."""
    sections = {
        "deliver": {"repo": "meadow/campaigns", "branch": "main", "path": "drops/{name}"},
        "upload": {"namespace": "acme", "repo": "assets", "branch": "main", "prefix": "refs"},
    }
    lines = ["version: 1", "name: spring", "model: kling-video-o3-pro-reference-to-video"]
    where = (0, 0)
    for name, fields in sections.items():
        lines.append(f"{name}:")
        for field, good in fields.items():
            if (name, field) == (section, key):
                where = (len(lines) + 1, len(f"  {field}: ") + 1)
            lines.append(f'  {field}: "{value if (name, field) == (section, key) else good}"')
    lines.append("jobs: [{name: a, prompt: hi}]")
    path = tmp_path / f"{section}-{key}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, *where


@pytest.mark.parametrize(("section", "key", "value", "says"), BAD_FIELDS)
def test_a_bad_name_branch_or_path_in_the_manifest_is_one_located_problem(
    tmp_path: Path, section: str, key: str, value: str, says: str
) -> None:
    """A bad name, branch or prefix under `upload:` or `deliver:` is one problem at its line, column and
    field."""
    path, line, column = manifest_with(tmp_path, section, key, value)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    [problem] = caught.value.problems
    assert (problem.line, problem.column, problem.field) == (line, column, f"{section}.{key}")
    assert says in problem.message, problem.message


def test_good_names_branches_and_prefixes_load(tmp_path: Path) -> None:
    """Slashed branches, dotted and dashed names and a nested upload prefix load without a problem."""
    for section, key, value in [
        ("deliver", "branch", "review/client-a"),
        ("deliver", "repo", "a1/b.c-d_e"),
        ("upload", "branch", "a/b/c"),
        ("upload", "prefix", "refs/2026"),
    ]:
        path, _, _ = manifest_with(tmp_path, section, key, value)
        load_manifest(path)
