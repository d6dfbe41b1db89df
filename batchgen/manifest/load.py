"""`load_manifest`: a manifest file -> a checked `Manifest`, its problems raised as one ManifestError
or handed on for `build_plan` to raise together with the plan's, so that one `plan` says them all.

Reads the manifest, the CSV files it names and its local asset files; nothing else (no network).

The stages, and what each runs on when an earlier one found problems:

1. Reading and YAML: an unreadable file or a syntax error stops everything (nothing is left to
   check); the YAML's other problems (a duplicate key, a tag, a non-finite number) stop after 2.
2. The JSON Schema and the checks it cannot express (names, assets, CSV files) run together on
   whatever the YAML gave.
3. Planning (templates, the model, each request against the model's schema and rules, keys and
   paths: `batchgen.planning.build_plan`) runs on what 2 did not refuse: a job spec with a problem of
   its own is left out, so are the fields that name an asset that could not be used, and `run:` is
   not read by planning at all (the Manifest leaves it out when it is refused).
   A problem in what every job reads (`model`, `defaults`, `vars`, `matrix`, `rows`, `output`, the
   `jobs` list itself, an unknown top-level key, `version`) would make every later problem a guess,
   and one in `name`, `upload:` or `deliver:` must stop the command before it reads anything from the
   network (planning reads the model registry first): those are raised here at once, with the rest
   of stage 2's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchgen.errors import ManifestError, Problem
from batchgen.manifest.checks import Checker, schema_problems
from batchgen.manifest.model import (
    DELIVER_DEFAULTS,
    JOB_SETTINGS,
    UPLOAD_DEFAULTS,
    JobSpec,
    Manifest,
    PathTuple,
    Positions,
)
from batchgen.manifest.yaml_tree import Tree, compose, read_text

__all__ = ["load_manifest", "sort_problems"]

#: Top-level sections planning never reads and nothing reads before it: a problem in one leaves the
#: rest of the manifest plannable.
_NOT_PLANNED = frozenset({"run"})


def load_manifest(path: str | os.PathLike[str], *, file: str | None = None) -> Manifest:
    """Read and check a manifest. Problems that leave it plannable are kept in `Manifest.problems`
    for `build_plan` to raise with its own; any other problem raises ManifestError listing them all.

    `file` is how the manifest is named in problems (default: `path` as given).
    """
    manifest_path = Path(path)
    shown = file if file is not None else os.fspath(path)
    tree = Tree(shown)
    data = tree.convert(compose(read_text(manifest_path, shown), shown), ())
    positions = Positions(shown, tree.values, tree.keys)
    if not isinstance(data, dict):
        where = positions.at(())
        message = "the manifest must be a mapping (key: value)"
        raise ManifestError([*tree.problems, Problem(shown, where.line, where.column, "", message)])
    reported = {p.field for p in tree.problems}
    found = [(at, p) for at, p in schema_problems(data, positions) if p.field not in reported]
    checker = Checker(data, positions, manifest_path.parent)
    checker.run()
    found.extend(checker.problems)
    problems = sort_problems([*tree.problems, *(problem for _, problem in found)], shown)
    refused = _Refused.of(at for at, _ in found)
    if tree.problems or refused.everything:
        raise ManifestError(problems)
    return _build(manifest_path, shown, data, positions, checker, refused, tuple(problems))


def sort_problems(problems: Iterable[Problem], manifest_file: str) -> list[Problem]:
    """`problems` without repeats, the manifest's first, then each other file's, by line and column."""
    unique = list(dict.fromkeys(problems))
    unknown = sys.maxsize  # problems without a line go after the located ones of their file
    return sorted(
        unique,
        key=lambda p: (p.file != manifest_file, p.file, unknown if p.line is None else p.line, p.column or 0),
    )


@dataclass(frozen=True, slots=True)
class _Refused:
    """What the problems of stage 2 take out of planning (see the module's docstring)."""

    everything: bool
    jobs: frozenset[int]
    assets: frozenset[str]
    sections: frozenset[str]

    @classmethod
    def of(cls, paths: Iterable[PathTuple]) -> _Refused:
        everything, jobs, assets, sections = False, set(), set(), set()
        for path in paths:
            head, item = (path[0] if path else None), (path[1] if len(path) > 1 else None)
            if head == "jobs" and isinstance(item, int):
                jobs.add(item)
            elif head == "assets" and isinstance(item, str):
                assets.add(item)
            elif isinstance(head, str) and head in _NOT_PLANNED:
                sections.add(head)
            else:
                everything = True
        return cls(everything, frozenset(jobs), frozenset(assets), frozenset(sections))


def _build(
    path: Path,
    shown: str,
    data: dict[str, Any],
    positions: Positions,
    checker: Checker,
    refused: _Refused,
    problems: tuple[Problem, ...],
) -> Manifest:
    jobs = tuple(
        _job_spec(i, job, positions, checker) for i, job in enumerate(data["jobs"]) if i not in refused.jobs
    )
    return Manifest(
        path=path,
        file=shown,
        name=data["name"],
        model=data.get("model"),
        target_namespace=data.get("target_namespace"),
        defaults={k: v for k, v in data.get("defaults", {}).items() if k != "num_generations"},
        assets={name: asset for name, asset in checker.assets.items() if name not in refused.assets},
        vars=data.get("vars", {}),
        matrix={k: tuple(v) for k, v in data.get("matrix", {}).items()},
        rows=checker.rows.get(("rows",)),
        jobs=jobs,
        output_pattern=data.get("output", {}).get("pattern"),
        run={} if "run" in refused.sections else data.get("run", {}),
        upload={**UPLOAD_DEFAULTS, **upload} if (upload := data.get("upload")) is not None else None,
        positions=positions,
        deliver={**DELIVER_DEFAULTS, **deliver} if (deliver := data.get("deliver")) is not None else None,
        problems=problems,
        refused_assets=refused.assets,
        report=data.get("report"),
        notify=tuple(notify if isinstance(notify := data.get("notify", []), list) else [notify]),
    )


def _job_spec(i: int, job: dict[str, Any], positions: Positions, checker: Checker) -> JobSpec:
    return JobSpec(
        index=i,
        name=job["name"],
        model=job.get("model"),
        vars=job.get("vars", {}),
        matrix={k: tuple(v) for k, v in job.get("matrix", {}).items()},
        rows=checker.rows.get(("jobs", i, "rows")),
        repeat=job.get("repeat", 1),
        fields={k: v for k, v in job.items() if k not in JOB_SETTINGS},
        location=positions.at(("jobs", i)),
    )
