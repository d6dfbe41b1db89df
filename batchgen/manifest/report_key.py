"""The manifest's `report:` key, checked against the job specs it names fields of.

`report.title` is the jobs' readable name (batchgen.naming.TitleTemplate): each `{field}` must be
something every job spec can fill, a variable of it (`vars`, `matrix`, a `rows` column, its own or
the top level's), a request field it sends, or a built-in; `report.group_by` must be a variable of
some job spec, or `name`. Problems are located at the key, like every other manifest problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from batchgen.manifest.model import JOB_SETTINGS, PathTuple, Rows
from batchgen.naming import TITLE_BUILTINS, TitleTemplate
from batchgen.wording import did_you_mean

__all__ = ["check_report"]

#: Checker.add: (path, message, hint)
Add = Callable[[PathTuple, str, "str | None"], None]
_SPECS_NAMED = 3  # job specs named in one problem; the others are counted


def check_report(data: Mapping[str, Any], rows: Mapping[PathTuple, Rows], add: Add) -> None:
    """Report, through `add`, what is wrong with `data`'s `report:` (nothing when it has none)."""
    report = data.get("report")
    jobs = data.get("jobs")
    if not isinstance(report, dict) or not isinstance(jobs, list):
        return
    readable = [
        (i, job) for i, job in enumerate(jobs) if isinstance(job, dict) and _rows_loaded(data, i, job, rows)
    ]
    specs = [
        (i, job.get("name"), _spec_variables(data, i, job, rows), _request_fields(data, job))
        for i, job in readable
    ]
    every_spec = len(readable) == len(jobs)
    title = report.get("title")
    if isinstance(title, str) and title:
        _check_title(title, specs, add, every_spec=every_spec)
    group_by = report.get("group_by")
    if isinstance(group_by, str) and group_by and every_spec:
        known = {"name"}.union(*(variables for _, _, variables, _ in specs))
        if group_by not in known:
            hint = did_you_mean(group_by, known) or "one of: " + ", ".join(sorted(known))
            add(("report", "group_by"), f"'{group_by}' is not a variable of any job", hint)


Spec = tuple[int, Any, set[str], set[str]]  # index, name, variables, request fields


def _check_title(title: str, specs: list[Spec], add: Add, *, every_spec: bool) -> None:
    """`every_spec` False: some spec's CSV could not be read, so a field no readable spec has may be
    one of its columns; only the readable specs that lack a field are reported."""
    try:
        template = TitleTemplate.parse(title)
    except ValueError as exc:
        add(("report", "title"), str(exc), 'e.g. title: "{product} · {aspect_ratio}"')
        return
    everything = set(TITLE_BUILTINS).union(*(v | f for _, _, v, f in specs))
    for field in template.fields:
        if field not in everything and every_spec:
            hint = did_you_mean(field, everything) or "a variable, a request field or one of " + ", ".join(
                TITLE_BUILTINS
            )
            add(("report", "title"), f"unknown field '{field}' in {title!r}", hint)
            continue
        lacking = [
            f"jobs[{i}] ({name})" for i, name, variables, fields in specs if field not in variables | fields
        ]
        if lacking and field not in TITLE_BUILTINS and len(lacking) < len(specs):
            named = ", ".join(lacking[:_SPECS_NAMED])
            more = f" and {len(lacking) - _SPECS_NAMED} more" if len(lacking) > _SPECS_NAMED else ""
            add(
                ("report", "title"),
                f"'{field}' is neither a variable nor a request field of {named}{more}",
                "give those jobs the variable, or use fields every job has",
            )


def _spec_variables(
    data: Mapping[str, Any], i: int, job: Mapping[str, Any], rows: Mapping[PathTuple, Rows]
) -> set[str]:
    """The variables the expansions of job spec `i` have: the top level's and its own."""
    names: set[str] = set()
    for node, prefix in ((data, ()), (job, ("jobs", i))):
        for section in ("vars", "matrix"):
            values = node.get(section)
            names.update(values if isinstance(values, dict) else ())
        table = rows.get((*prefix, "rows"))
        names.update(table.header if table else ())
    return names


def _request_fields(data: Mapping[str, Any], job: Mapping[str, Any]) -> set[str]:
    """The top-level request fields job spec `job` sends (a `null` removes a default)."""
    defaults = data.get("defaults")
    fields = {**(defaults if isinstance(defaults, dict) else {}), **job}
    sent = {name for name, value in fields.items() if value is not None and name not in JOB_SETTINGS}
    return sent | ({"target_namespace"} if data.get("target_namespace") else set())


def _rows_loaded(
    data: Mapping[str, Any], i: int, job: Mapping[str, Any], rows: Mapping[PathTuple, Rows]
) -> bool:
    """Whether the CSVs the spec names were read (one that was not is reported already: its columns
    are unknown, so the spec is not checked)."""
    return ("rows" not in data or ("rows",) in rows) and ("rows" not in job or ("jobs", i, "rows") in rows)
