"""Where a job's value came from: the CSV row (file and line) that gave a job the variables a field
uses, or the matrix item of the one variable it uses, so that a problem in such a value is reported
where the value was written, not only at the template (pure)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from batchgen.manifest.model import JobSpec, Location, Manifest

__all__ = ["MAX_TRACED", "csv_origin", "value_origin"]

#: Problems traced to their CSV row or matrix item, at most, per plan; the rest are grouped at the
#: template with a count.
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


def value_origin(
    manifest: Manifest, spec: JobSpec, variables: Mapping[str, Any], used: Collection[str]
) -> tuple[Location, str] | None:
    """Where the values of `used` (the variables a field reads) were written, when one place holds
    them: a CSV row, or the matrix item of the one variable; and how to say so. None otherwise."""
    found = csv_origin(manifest, spec, variables, used)
    if found is not None:
        row, columns = found
        s = "s" if len(columns) > 1 else ""
        return row, f"column{s} {', '.join(columns)} of this row"
    if len(used) != 1:
        return None
    [name] = used
    axis = _matrix_axis(manifest, spec, name)
    if axis is None:
        return None
    path, values = axis
    value = variables.get(name)
    for i, item in enumerate(values):
        if type(item) is type(value) and item == value:
            return manifest.positions.at((*path, i)), f"this value of matrix {name}"
    return None


def _matrix_axis(
    manifest: Manifest, spec: JobSpec, name: str
) -> tuple[tuple[str | int, ...], tuple[Any, ...]] | None:
    """The matrix axis that gives a job of `spec` its `name` (where it is written, and its values),
    by expansion order: a job's rows win over its matrix, which wins over its vars and the manifest's
    rows, matrix and vars, in that order; None when something else gives it."""
    if spec.rows is not None and name in spec.rows.header:
        return None
    if name in spec.matrix:
        return ("jobs", spec.index, "matrix", name), spec.matrix[name]
    if name in spec.vars or (manifest.rows is not None and name in manifest.rows.header):
        return None
    if name in manifest.matrix:
        return ("matrix", name), manifest.matrix[name]
    return None
