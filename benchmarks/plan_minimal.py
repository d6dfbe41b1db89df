"""The least a planner can do: expand a manifest's matrices into jobs, key them, print compact JSON.

Run: python benchmarks/plan_minimal.py MANIFEST.yaml > plan.json

The yardstick for `batchgen plan --json` (benchmarks/run.py, row "plan"). It reads the YAML (with
libyaml when PyYAML has it), expands each job over the product of the top-level and the job's
`matrix` values and its `repeat` replicas, fills `{var}` placeholders in string fields, builds each
request (`model`, then `defaults`, then the job's fields), keys it with sha256 over the canonical
JSON of model, request and replica, and writes `{"name", "job_count", "jobs": [...]}` with each job's
index, key, name, replica, output path and request. No schema, no validation, no error locations,
no assets, no cost quote: only the expansion every planner has to do.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

PLACEHOLDER = re.compile(r"\{(\w+)\}")
NOT_REQUEST = frozenset({"name", "matrix", "repeat"})
CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def fill(value: Any, variables: Mapping[str, Any]) -> Any:
    """`value` with every `{var}` in its strings replaced (a lone placeholder keeps the value's type)."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole:
            return variables[whole.group(1)]
        return PLACEHOLDER.sub(lambda m: str(variables[m.group(1)]), value)
    if isinstance(value, list):
        return [fill(item, variables) for item in value]
    if isinstance(value, dict):
        return {key: fill(item, variables) for key, item in value.items()}
    return value


def combinations(matrix: Mapping[str, list[Any]]) -> Iterator[dict[str, Any]]:
    names = list(matrix)
    for values in itertools.product(*(matrix[name] for name in names)):
        yield dict(zip(names, values, strict=True))


def expand(manifest: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    model = manifest["model"]
    defaults = manifest.get("defaults") or {}
    pattern = (manifest.get("output") or {}).get("pattern", "{name}/{name}-{replica}")
    index = 0
    for spec in manifest["jobs"]:
        fields = {k: v for k, v in spec.items() if k not in NOT_REQUEST}
        matrix = {**(manifest.get("matrix") or {}), **(spec.get("matrix") or {})}
        for combo in combinations(matrix):
            for replica in range(int(spec.get("repeat", 1))):
                variables = {
                    **(manifest.get("vars") or {}),
                    **combo,
                    "name": spec["name"],
                    "replica": replica,
                }
                request = {"model": model, **defaults, **fill(fields, variables)}
                canonical = CANONICAL.encode({"model": model, "request": request, "replica": replica})
                yield {
                    "index": index,
                    "key": hashlib.sha256(canonical.encode()).hexdigest(),
                    "name": spec["name"],
                    "replica": replica,
                    "output_path": fill(pattern, variables),
                    "request": request,
                }
                index += 1


def main(argv: list[str] | None = None) -> int:
    path = Path((argv or sys.argv[1:])[0])
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    manifest = yaml.load(path.read_text("utf-8"), Loader=loader)
    jobs = list(expand(manifest))
    sys.stdout.write(
        json.dumps({"name": manifest["name"], "job_count": len(jobs), "jobs": jobs}, separators=(",", ":"))
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
