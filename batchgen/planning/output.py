"""A plan's output: `plan_to_json` (plan.json, `plan --json`) and `format_plan` (for humans)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from batchgen.planning.jobs import Job, Plan
from batchgen.registry.pricing import format_usd

__all__ = ["format_plan", "plan_to_json", "write_plan_json"]


def _job_json(job: Job) -> dict[str, Any]:
    return {
        "index": job.index,
        "key": job.key,
        "name": job.name,
        "title": job.label,
        "replica": job.replica,
        "model": job.model,
        "media_type": job.media_type,
        "output_path": job.output_path,
        "duration_s": job.duration_s,
        "cost_usd": None if job.cost_usd is None else str(job.cost_usd),
        "vars": dict(job.vars),
        "request": job.request,
        "assets": [
            {
                "name": a.name,
                "sha256": a.sha256,
                "size": a.size,
                "media_type": a.media_type,
                "path": str(a.path),
            }
            for a in job.assets
        ],
        "location": {"file": job.location.file, "line": job.location.line, "column": job.location.column},
    }


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode  # the C encoder (no indent)


def write_plan_json(plan: Plan, write: Callable[[str], object]) -> None:
    """`plan_to_json(plan)` as a JSON document, streamed job by job with json's C encoder: one job per
    line, so a 100,000-job plan is neither built as one string nor encoded by the pure-Python encoder
    that indenting would need."""
    header = plan_to_json(plan, jobs=False)
    write("{\n")
    for name, value in header.items():
        write(f"  {_ENCODE(name)}: {_ENCODE(value)},\n")
    write('  "jobs": [')
    for index, job in enumerate(plan.jobs):
        write(("\n    " if index == 0 else ",\n    ") + _ENCODE(_job_json(job)))
    write("\n  ]\n}\n" if plan.jobs else "]\n}\n")


def plan_to_json(plan: Plan, *, jobs: bool = True) -> dict[str, Any]:
    """The whole plan as JSON-ready data, in plan order (for plan.json and `plan --json`)."""
    return {
        "format": "batchgen-plan/1",
        "name": plan.name,
        "manifest": str(plan.manifest_path),
        "job_count": len(plan.jobs),
        "total_cost_usd": None if plan.total_cost_usd is None else str(plan.total_cost_usd),
        "by_model": plan.count_by_model(),
        "by_aspect_ratio": plan.count_by_aspect_ratio(),
        "model_defaults": {model: dict(values) for model, values in plan.model_defaults.items()},
        **({"jobs": [_job_json(job) for job in plan.jobs]} if jobs else {}),
    }


def format_plan(plan: Plan, *, done_keys: frozenset[str] = frozenset(), show_requests: int = 3) -> str:
    """The plan for humans: counts by model and aspect ratio, progress, the quote, the first requests."""
    left = [job for job in plan.jobs if job.key not in done_keys]
    done = len(plan.jobs) - len(left)
    lines = [
        f"Plan {plan.name!r} ({plan.manifest_path}): {len(plan.jobs)} jobs, {done} done, {len(left)} to run",
        "  by model:",
        *_table(plan.count_by_model()),
        "  by aspect ratio:",
        *_table(plan.count_by_aspect_ratio()),
        f"  cost quote: {format_usd(plan.total_cost_usd)} in total, {format_usd(plan.cost_of(left))} to go",
    ]
    shown = left[:show_requests]
    if shown:
        lines.append(f"First {len(shown)} request(s) to send:")
    for job in shown:
        lines.append(f"  #{job.index} {job.label} -> videos/{job.output_path}  key {job.key[:12]}")
        body = json.dumps(job.request, indent=2, ensure_ascii=False)
        lines.extend("    " + line for line in body.splitlines())
    return "\n".join(lines)


def _table(counts: Mapping[str, int]) -> list[str]:
    width = max((len(k) for k in counts), default=0)
    return [f"    {name.ljust(width)}  {count}" for name, count in counts.items()]
