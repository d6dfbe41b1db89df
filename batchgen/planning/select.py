"""`--only KEY=VALUE`: some of a plan's jobs, chosen by their variables, built-ins and request fields.

Pure: a filter over planned jobs (a `Job`, or a job of a run directory's plan.json), nothing else.
Terms with the same KEY are alternatives (`--only product=lamp --only product=mug`); terms with
different KEYs must all hold. A job is described by its `facts`: every manifest variable with a
single value, the built-ins `name`, `replica`, `index`, `model`, `key` (matched as a prefix, so the
12 characters `plan` shows are enough), and every request field with a single value
(`aspect_ratio`, `duration`, …). A variable wins over a request field of the same name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchgen.errors import UsageError
from batchgen.planning.jobs import Job, Plan
from batchgen.planning.paths import value_text
from batchgen.wording import did_you_mean

__all__ = ["Selection", "job_facts", "json_job_facts", "select_jobs", "select_plan", "selected_keys"]

_SHOWN_VALUES = 8  # values of a key listed when nothing matched


def _text(value: Any) -> str | None:
    """A single value as `--only` compares it (None for lists and mappings: they cannot be chosen)."""
    return value_text(value) if value is None or isinstance(value, str | int | float) else None


def facts(
    *,
    key: str,
    name: str,
    replica: int,
    index: int,
    model: str,
    variables: Mapping[str, Any],
    request: Mapping[str, Any],
) -> dict[str, str]:
    """What `--only` can match on one job."""
    found: dict[str, str] = {}
    for source in (request, variables):  # variables last: they win
        for field, value in source.items():
            text = _text(value)
            if text is not None:
                found[field] = text
    found.update(name=name, replica=str(replica), index=str(index), model=model, key=key)
    return found


def job_facts(job: Job) -> dict[str, str]:
    return facts(
        key=job.key,
        name=job.name,
        replica=job.replica,
        index=job.index,
        model=job.model,
        variables=job.vars,
        request=job.request,
    )


def json_job_facts(job: Mapping[str, Any]) -> dict[str, str]:
    """The facts of a job as plan.json records it (`plan_to_json`)."""
    variables, request = job.get("vars"), job.get("request")
    return facts(
        key=str(job.get("key", "")),
        name=str(job.get("name", "")),
        replica=int(job.get("replica", 0)),
        index=int(job.get("index", 0)),
        model=str(job.get("model", "")),
        variables=variables if isinstance(variables, Mapping) else {},
        request=request if isinstance(request, Mapping) else {},
    )


@dataclass(frozen=True, slots=True)
class Selection:
    """Parsed `--only` terms: KEY -> the values accepted for it."""

    terms: Mapping[str, tuple[str, ...]]

    @classmethod
    def parse(cls, texts: Sequence[str] | None) -> Selection | None:
        """The selection `--only` flags ask for; None when there are none."""
        if not texts:
            return None
        terms: dict[str, tuple[str, ...]] = {}
        for text in texts:
            field, sep, value = text.partition("=")
            field = field.strip()
            if not sep or not field:
                raise UsageError(
                    f"--only {text!r}: expected KEY=VALUE, such as product=lamp or aspect_ratio=9:16"
                )
            terms[field] = (*terms.get(field, ()), value)
        return cls(terms)

    def describe(self) -> str:
        return " ".join(f"--only {k}={v}" for k, values in self.terms.items() for v in values)

    def matches(self, job: Mapping[str, str]) -> bool:
        for field, values in self.terms.items():
            have = job.get(field)
            if have is None or not any(_same(field, have, value) for value in values):
                return False
        return True

    def check_keys(self, known: Iterable[str]) -> None:
        """Refuse a KEY no job has, naming the keys there are."""
        names = set(known)
        for field in self.terms:
            if field not in names:
                hint = did_you_mean(field, names)
                raise UsageError(
                    f"--only {field}=…: no job has a variable or field '{field}'"
                    + (f" ({hint})" if hint else "")
                    + f"; known: {', '.join(sorted(names))}"
                )


def _same(field: str, have: str, wanted: str) -> bool:
    if field == "key":
        return len(wanted) >= 4 and have.startswith(wanted.lower())
    if have in ("true", "false"):
        return have == wanted.lower()
    return have == wanted


def selected_keys(selection: Selection, jobs: Iterable[Mapping[str, str]]) -> list[str]:
    """The keys of the jobs (given by their facts) that `selection` matches, in the order given; raises
    UsageError for a KEY none of them has (only when there are jobs to know the keys from)."""
    every = list(jobs)
    if every:
        selection.check_keys({field for job in every for field in job})
    return [job["key"] for job in every if selection.matches(job)]


def select_jobs(plan: Plan, selection: Selection | None) -> tuple[Job, ...]:
    """The plan's jobs that `selection` matches (all of them when None)."""
    if selection is None:
        return plan.jobs
    keys = set(selected_keys(selection, (job_facts(job) for job in plan.jobs)))
    return tuple(job for job in plan.jobs if job.key in keys)


def select_plan(plan: Plan, selection: Selection | None) -> Plan:
    """The plan narrowed to the selected jobs (the quote recomputed)."""
    jobs = select_jobs(plan, selection)
    if len(jobs) == len(plan.jobs):
        return plan
    return Plan(plan.manifest_path, plan.name, jobs, plan.cost_of(jobs), plan.model_defaults)


def nothing_matched(selection: Selection, jobs: Iterable[Mapping[str, str]], planned: int) -> str:
    """Why a selection chose no job: the values each of its keys has, to pick from."""
    every = list(jobs)
    shown = []
    for field in selection.terms:
        values = sorted({job[field] for job in every if field in job})
        listed = ", ".join(values[:_SHOWN_VALUES]) + (", …" if len(values) > _SHOWN_VALUES else "")
        shown.append(f"{field}: {listed}")
    return f"no job matches {selection.describe()} (of {planned} planned); values there are: " + "; ".join(
        shown
    )
