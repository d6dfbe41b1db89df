"""The exception tree and how problems are shown to users."""

import pytest

from batchgen.errors import ManifestError, Problem


def test_problem_formats_file_line_column_field_and_hint() -> None:
    """A problem reads as file:line:column: field: message, with the hint on its own line."""
    problem = Problem("jobs/a.yaml", 12, 5, "jobs[0].prompt", "unknown variable 'x'", hint="use {y}")
    assert str(problem) == "jobs/a.yaml:12:5: jobs[0].prompt: unknown variable 'x'\n    hint: use {y}"


def test_problem_without_position_names_only_the_file() -> None:
    """A problem with no line (e.g. an unreadable file) still names the file and field."""
    assert str(Problem("m.yaml", None, None, "rows", "cannot read")) == "m.yaml: rows: cannot read"


def test_manifest_error_lists_every_problem_and_needs_one() -> None:
    """ManifestError's message lists all its problems, one per line, and refuses an empty list."""
    err = ManifestError([Problem("a", 1, 1, "x", "bad"), Problem("a", 2, 1, "y", "worse")])
    assert str(err).splitlines() == ["a:1:1: x: bad", "a:2:1: y: worse"]
    with pytest.raises(ValueError, match="at least one"):
        ManifestError([])
