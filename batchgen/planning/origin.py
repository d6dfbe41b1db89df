"""Where a job's value came from: the CSV row (file and line) that gave a job the variables a field
uses, so a problem in a CSV-driven value is reported at that row, not only at the template (pure)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from batchgen.manifest.model import JobSpec, Location, Manifest

__all__ = ["MAX_TRACED", "csv_origin", "where_text"]

#: Problems traced to their CSV row, at most, per plan; the rest are grouped at the template with a count.
MAX_TRACED = 20


def csv_origin(
    manifest: Manifest, spec: JobSpec, variables: Mapping[str, Any], used: Collection[str]
) -> tuple[Location, tuple[str, ...]] | None:
    """The CSV row whose cells gave `variables` the values of `used` (variables a field reads), and
    which of its columns those are; None when none of them came from a CSV. A job's own rows win over
    the manifest's; the manifest's columns count only where the job spec does not set them itself."""
    overriding = set(spec.vars) | set(spec.matrix) | (set(spec.rows.header) if spec.rows else set())
    for rows, overridden in ((spec.rows, set[str]()), (manifest.rows, overriding)):
        if rows is None:
            continue
        effective = [column for column in rows.header if column not in overridden]
        columns = tuple(column for column in effective if column in used)
        if not columns:
            continue
        for row, line in zip(rows.rows, rows.lines, strict=True):
            if all(row[column] == variables.get(column) for column in effective):
                return Location(rows.file, line, None), columns
    return None


def where_text(location: Location) -> str:
    """`file:line:column`, as far as known."""
    text = location.file
    if location.line is not None:
        text += f":{location.line}"
        if location.column is not None:
            text += f":{location.column}"
    return text
