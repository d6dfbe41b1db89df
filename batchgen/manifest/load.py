"""`load_manifest`: a manifest file -> a checked `Manifest`, or one ManifestError listing every problem.

Reads the manifest, the CSV files it names and its local asset files; nothing else (no network).
"""

from __future__ import annotations

import os
import sys
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
    Positions,
)
from batchgen.manifest.yaml_tree import Tree, compose, read_text

__all__ = ["load_manifest"]


def load_manifest(path: str | os.PathLike[str], *, file: str | None = None) -> Manifest:
    """Read and check a manifest; raise ManifestError listing every problem found.

    `file` is how the manifest is named in problems (default: `path` as given).
    """
    manifest_path = Path(path)
    shown = file if file is not None else os.fspath(path)
    tree = Tree(shown)
    data = tree.convert(compose(read_text(manifest_path, shown), shown), ())
    positions = Positions(shown, tree.values, tree.keys)
    problems = list(tree.problems)
    if not isinstance(data, dict):
        where = positions.at(())
        problems.append(
            Problem(shown, where.line, where.column, "", "the manifest must be a mapping (key: value)")
        )
        raise ManifestError(problems)
    reported = {p.field for p in tree.problems}
    problems.extend(p for p in schema_problems(data, positions) if p.field not in reported)
    checker = Checker(data, positions, manifest_path.parent)
    checker.run()
    problems.extend(checker.problems)
    if problems:
        raise ManifestError(_sorted(problems, shown))
    return _build(manifest_path, shown, data, positions, checker)


def _sorted(problems: list[Problem], manifest_file: str) -> list[Problem]:
    unique = list(dict.fromkeys(problems))
    unknown = sys.maxsize  # problems without a line go after the located ones of their file
    return sorted(
        unique,
        key=lambda p: (p.file != manifest_file, p.file, unknown if p.line is None else p.line, p.column or 0),
    )


def _build(path: Path, shown: str, data: dict[str, Any], positions: Positions, checker: Checker) -> Manifest:
    jobs = tuple(_job_spec(i, job, positions, checker) for i, job in enumerate(data["jobs"]))
    upload = data.get("upload")
    return Manifest(
        path=path,
        file=shown,
        name=data["name"],
        model=data.get("model"),
        target_namespace=data.get("target_namespace"),
        defaults={k: v for k, v in data.get("defaults", {}).items() if k != "num_generations"},
        assets=checker.assets,
        vars=data.get("vars", {}),
        matrix={k: tuple(v) for k, v in data.get("matrix", {}).items()},
        rows=checker.rows.get(("rows",)),
        jobs=jobs,
        output_pattern=data.get("output", {}).get("pattern"),
        run=data.get("run", {}),
        upload={**UPLOAD_DEFAULTS, **upload} if upload is not None else None,
        positions=positions,
        deliver={**DELIVER_DEFAULTS, **data["deliver"]} if data.get("deliver") is not None else None,
        report=data.get("report"),
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
