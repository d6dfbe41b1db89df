"""Planning: a `Manifest` -> ordered `Job`s (expanded, templated, keyed, placed, validated, quoted).

    planner.py    build_plan and the planner that drives the rest
    expansion.py  rows x matrix x repeat: each job's variables and request fields
    templates.py  parse_template: the `{var}` / `{asset:NAME}` syntax
    compiler.py   templated values -> constants or renderers, compiled once per job spec
    keys.py       canonical_json, job_key, resolve_request
    paths.py      output paths (pure): pattern, sanitising, safety checks, collisions
    problems.py   the planner's problems, located and grouped
    origin.py     the CSV row a job's value came from (problems are reported there)
    jobs.py       Job and Plan         output.py  plan_to_json, format_plan
    select.py     `--only KEY=VALUE`: some of a plan's jobs

Pure and deterministic: no network, no clock, no randomness.
"""

from batchgen.planning.jobs import Job, Plan
from batchgen.planning.keys import canonical_json, job_key, resolve_request
from batchgen.planning.output import format_plan, plan_to_json, write_plan_json
from batchgen.planning.planner import build_plan

__all__ = [
    "Job",
    "Plan",
    "build_plan",
    "canonical_json",
    "format_plan",
    "job_key",
    "plan_to_json",
    "resolve_request",
    "write_plan_json",
]
