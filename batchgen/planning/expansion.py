"""Expansion: a job spec's variables, request fields, and its jobs' variables (rows x matrix x repeat)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import product
from typing import Any

from batchgen.manifest.model import JobSpec, Manifest, PathTuple

__all__ = [
    "MAX_JOBS",
    "Vars",
    "expansion_size",
    "expansions",
    "request_fields",
    "request_path",
    "variable_names",
]

Vars = dict[str, Any]  # one job's variables, built-ins included

#: A manifest may expand to at most this many jobs.
MAX_JOBS = 1_000_000
_REQUEST_BUILTINS = ("name", "replica", "index", "model")


def variable_names(manifest: Manifest, spec: JobSpec) -> frozenset[str]:
    """Every variable a job of `spec` has: the request built-ins, vars, matrix axes and rows columns."""
    names: set[str] = set(_REQUEST_BUILTINS)
    for source in (manifest.vars, manifest.matrix, spec.vars, spec.matrix):
        names.update(source)
    for rows in (manifest.rows, spec.rows):
        if rows is not None:
            names.update(rows.header)
    return frozenset(names)


def request_fields(manifest: Manifest, spec: JobSpec) -> tuple[dict[str, Any], dict[str, PathTuple]]:
    """The spec's request fields before templating (model added later) and where each was written."""
    fields: dict[str, Any] = {}
    sources: dict[str, PathTuple] = {}
    if manifest.target_namespace is not None:
        fields["target_namespace"] = manifest.target_namespace
        sources["target_namespace"] = ("target_namespace",)
    for name, value in manifest.defaults.items():
        fields[name] = value
        sources[name] = ("defaults", name)
    for name, value in spec.fields.items():
        fields[name] = value
        sources[name] = ("jobs", spec.index, name)
    for name in [k for k, v in fields.items() if v is None]:  # `field: null` removes a default
        del fields[name], sources[name]
    return fields, sources


def request_path(source: PathTuple) -> PathTuple:
    """Where in the request a value written at `source` in the manifest ends up."""
    if source[:1] == ("defaults",):
        return source[1:]
    if source[:1] == ("jobs",):
        return source[2:]
    return source


def _combos(axes: Mapping[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in product(*axes.values())]


def expansion_size(manifest: Manifest, spec: JobSpec) -> int:
    """How many jobs `spec` expands to."""
    size = spec.repeat
    for rows in (manifest.rows, spec.rows):
        size *= len(rows.rows) if rows is not None else 1
    for axes in (manifest.matrix, spec.matrix):
        for values in axes.values():
            size *= len(values)
    return size


def expansions(manifest: Manifest, spec: JobSpec) -> Iterator[tuple[Vars, int]]:
    """(user vars, replica) in plan order: rows (manifest x job), matrix (manifest then job axes), replica."""
    manifest_rows = manifest.rows.rows if manifest.rows is not None else ({},)
    job_rows = spec.rows.rows if spec.rows is not None else ({},)
    manifest_combos, job_combos = _combos(manifest.matrix), _combos(spec.matrix)
    for mrow in manifest_rows:
        for jrow in job_rows:
            for mc in manifest_combos:
                for jc in job_combos:
                    base = {**manifest.vars, **mc, **mrow, **spec.vars, **jc, **jrow}
                    for replica in range(spec.repeat):
                        yield base, replica
