"""Output paths: pattern, sanitising, safety checks, collisions, .part/sidecar names, ensure_inside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batchgen.planning.paths import (
    DEFAULT_PATTERN,
    OutputPattern,
    PathRegistry,
    PatternError,
    check_relative,
    sanitise,
)
from batchgen.rundir.layout import UnsafePathError, ensure_inside, part_path, sidecar_path
from tests.plan.conftest import HEADER, Workspace


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("16:9", "16x9"),
        ("a:b", "a_b"),
        ("a/b\\c", "a_b_c"),
        ("spring sale  2026", "spring_sale_2026"),
        ('x<>"|?*y', "x_y"),
        ("..", "_"),
        ("../etc", "_etc"),
        (" .hidden. ", "hidden"),
        ("", "_"),
        ("CON", "CON_"),
        ("lpt1.txt", "lpt1_.txt"),
        (True, "true"),
        (None, "null"),
        (5, "5"),
        (2.5, "2.5"),
        ("café", "café"),
        ("tab\there\nnewline", "tab_here_newline"),
        ("x" * 100, "x" * 80),
    ],
)
def test_sanitise_makes_one_safe_segment(value: object, safe: str) -> None:
    """Substituted values become a single safe path segment by the documented rules."""
    assert sanitise(value) == safe
    assert check_relative(sanitise(value)) is None


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("a/b.mp4", None),
        ("", "is empty"),
        ("/etc/passwd", "is absolute"),
        ("\\\\server\\x", "is absolute"),
        ("C:/x.mp4", "contains ':', which some file systems do not allow"),
        ("a/../b.mp4", "has a '..' segment"),
        ("./a.mp4", "has a '.' segment"),
        ("a//b.mp4", "has an empty segment"),
        ("a/", "has an empty segment"),
        ("a\\b.mp4", "contains '\\\\', which some file systems do not allow"),
        ("nul.mp4", "uses the reserved Windows name 'nul.mp4'"),
        ("Com3/x.mp4", "uses the reserved Windows name 'Com3'"),
        ("console/x.mp4", None),
        ("a./b.mp4", "has a segment ending in '.' ('a.')"),
        ("x" * 201 + ".mp4", "has a segment longer than 200 bytes"),
        ("é" * 101, "has a segment longer than 200 bytes"),
    ],
)
def test_check_relative(path: str, problem: str | None) -> None:
    """Absolute paths, traversal, empty segments, reserved names and over-long names are refused."""
    assert check_relative(path) == problem


def test_pattern_renders_sanitised_values_and_appends_the_extension() -> None:
    """Values are sanitised; the media type's extension is added unless the pattern writes one."""
    pattern = OutputPattern.compile("{product}/{aspect_ratio}/{name}-{key}")
    values = {"product": "mug/cup", "aspect_ratio": "16:9", "name": "hero", "key": "0123456789ab"}
    assert pattern.render(values, ".mp4") == "mug_cup/16x9/hero-0123456789ab.mp4"
    assert pattern.names() == ("product", "aspect_ratio", "name", "key")
    assert OutputPattern.compile("{name}.MP4").extension == ".MP4"
    assert OutputPattern.compile(DEFAULT_PATTERN).extension is None


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("../{name}", "has a '..' segment: file names must stay inside the run's videos/ directory"),
        ("/abs/{name}", "is absolute: file names must stay inside the run's videos/ directory"),
        ("{name}//{key}", "has an empty segment"),
        ("aux/{key}", "uses the reserved Windows name 'aux'"),
        ("{asset:x}", "asset references cannot be used in file names"),
        ("{name", "unclosed '{' at character 1"),
    ],
)
def test_bad_patterns_are_refused(pattern: str, message: str) -> None:
    """A pattern whose literal text is unsafe is refused before any job is planned."""
    with pytest.raises(PatternError) as caught:
        OutputPattern.compile(pattern)
    assert str(caught.value).startswith(message)


def test_registry_detects_exact_case_and_sidecar_collisions() -> None:
    """Paths collide when equal ignoring case, Unicode form or extension, or when a file is another's directory."""
    registry: PathRegistry[str] = PathRegistry()
    assert registry.claim("a/Hero.mp4", "one") is None
    assert registry.claim("a/hero.mp4", "two") == "one"
    assert registry.claim("A/HERO.png", "three") == "one"  # same sidecar a/hero.json
    assert registry.claim("a/caf\u00e9.mp4", "four") is None
    assert registry.claim("a/cafe\u0301.mp4", "five") == "four"  # NFD form of the same name
    assert registry.claim("a/hero.mp4/x.mp4", "six") == "one"  # below a file
    assert registry.claim("b/c.mp4/d.mp4", "seven") is None
    assert registry.claim("B/C.MP4", "eight") == "seven"  # a file where a directory is
    assert registry.claim("b/c.mp4/other.mp4", "nine") is None
    assert registry.claim("b/c.png", "ten") is None  # b/c.mp4 is a directory here, not a file


def test_collisions_in_a_plan_name_both_jobs(ws: Workspace) -> None:
    """Two jobs mapping to one path (here differing only in case) is a problem naming both."""
    errors = ws.errors(
        HEADER + "output: {pattern: '{p}'}\nmatrix: {p: [Mug, mug]}\njobs: [{name: j, prompt: 'a {p}'}]\n"
    )
    assert errors == [
        "m.yaml:4:19: jobs[0] (j, replica 0): job #1 (p=mug) writes 'mug.mp4', which clashes with 'Mug.mp4'"
        " of job #0 (jobs[0] j, replica 0, p=Mug)\n"
        "    hint: output paths are compared ignoring case and extension; add {key} or a differing variable"
    ]


def test_pattern_fields_are_vars_builtins_key_and_scalar_request_fields(ws: Workspace) -> None:
    """The pattern may use variables, name/replica/index/model, key (12 hex) and scalar request fields."""
    plan = ws.plan(
        HEADER
        + "output: {pattern: '{model}/{aspect_ratio}/{take}/{index}-{replica}-{seed}-{key}'}\n"
        + "jobs: [{name: j, prompt: x, aspect_ratio: '9:16', seed: 7, vars: {take: A/B}}]\n"
    )
    job = plan.jobs[0]
    assert job.output_path == f"kling-video-o3-pro-reference-to-video/9x16/A_B/0-0-7-{job.key[:12]}.mp4"


def test_default_pattern_is_name_dir_and_key(ws: Workspace) -> None:
    """Without output.pattern, files are <name>/<name>-<key12>.mp4."""
    (job,) = ws.plan(HEADER + "jobs: [{name: hero, prompt: x}]\n").jobs
    assert job.output_path == f"hero/hero-{job.key[:12]}.mp4"


def test_part_and_sidecar_names() -> None:
    """Downloads stream to <name>.part beside the result; metadata goes to <stem>.json."""
    final = Path("/run/videos/a/hero-1.mp4")
    assert part_path(final) == Path("/run/videos/a/hero-1.mp4.part")
    assert sidecar_path(final) == Path("/run/videos/a/hero-1.json")


def test_ensure_inside_accepts_paths_under_root(tmp_path: Path) -> None:
    """A safe relative path resolves under the root (which may itself be reached through a symlink)."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert ensure_inside(tmp_path / "link", "a/b.mp4") == real / "a" / "b.mp4"


@pytest.mark.parametrize("relative", ["../x.mp4", "/etc/passwd", "a/../../x", "", "a\\..\\x"])
def test_ensure_inside_refuses_unsafe_relative_paths(tmp_path: Path, relative: str) -> None:
    """Traversal, absolute and malformed relative paths raise UnsafePathError."""
    with pytest.raises(UnsafePathError):
        ensure_inside(tmp_path, relative)


def test_ensure_inside_refuses_escape_through_a_symlink(tmp_path: Path) -> None:
    """A symlink inside the root that points outside it cannot be written through."""
    root, outside = tmp_path / "run", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "videos")
    with pytest.raises(UnsafePathError, match="leads through a symlink"):
        ensure_inside(root, "videos/x.mp4")
    assert issubclass(UnsafePathError, ValueError)
