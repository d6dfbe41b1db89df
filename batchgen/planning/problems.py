"""The planner's problems: each located once in the manifest (a value from a CSV row or a matrix item
there), or grouped per job spec with a count."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from batchgen.errors import Problem, place
from batchgen.manifest.model import JOB_SETTINGS, JobSpec, Location, Manifest, PathTuple
from batchgen.planning.jobs import Job
from batchgen.planning.origin import MAX_TRACED, value_origin
from batchgen.wording import did_you_mean, format_path

__all__ = ["Finding", "PlanProblems", "differing_vars", "duplicate_hint", "parameter_typos"]

#: Parameter names of other APIs that people carry over by mistake -> what Oxen calls them.
_LIKELY_MISTAKES = {
    "end_image_url": "tail_image_url",
    "image_urls": "input_image",
    "image_url": "input_image",
}


@dataclass(slots=True)
class Finding:
    """Problems of one kind from many expanded jobs of one spec, reported once with a count."""

    spec: JobSpec
    replica: int
    location: Location
    field: str
    message: str
    hint: str | None
    count: int = 1

    def problem(self) -> Problem:
        who = f"replica {self.replica}" if self.count == 1 else f"{self.count} jobs"
        field = f"jobs[{self.spec.index}] ({self.spec.name}, {who})" + (
            f": {self.field}" if self.field else ""
        )
        return Problem(
            self.location.file, self.location.line, self.location.column, field, self.message, self.hint
        )


class PlanProblems:
    """Collects problems instead of stopping at the first; `all_problems` gives them in manifest order."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.problems: dict[Problem, None] = {}
        self.findings: dict[tuple[Any, ...], Finding] = {}
        self.traced = 0  # problems reported at their CSV row so far

    def static_problem(
        self, source: PathTuple, message: str, hint: str | None = None, *, key: bool = False
    ) -> None:
        where = self.manifest.positions.at(source, key=key)
        self.problems[Problem(where.file, where.line, where.column, format_path(source), message, hint)] = (
            None
        )

    def finding(
        self,
        spec: JobSpec,
        replica: int,
        where: Location,
        field: str,
        message: str,
        hint: str | None,
        group: Any,
    ) -> None:
        """Record one per-job problem; those with the same `group` in one spec are reported once."""
        found = self.findings.get((spec.index, group))
        if found is None:
            self.findings[(spec.index, group)] = Finding(spec, replica, where, field, message, hint)
        else:
            found.count += 1

    def row_finding(
        self,
        spec: JobSpec,
        used: Collection[str],
        variables: Mapping[str, Any],
        replica: int,
        where: Location,
        field: str,
        message: str,
        hint: str | None,
    ) -> None:
        """A per-job problem in a field that reads the variables `used`: reported where their values
        were written, the CSV row or the matrix item (each apart), else at `where` (grouped per spec)."""
        origin = value_origin(self.manifest, spec, variables, used) if self.traced < MAX_TRACED else None
        if origin is None:
            self.finding(spec, replica, where, field, message, hint, (field, message))
            return
        self.traced += 1
        at, what = origin
        note = f" ({what}, used at {place(where.file, where.line, where.column)})"
        group = (field, message, at.file, at.line, at.column)
        self.finding(spec, replica, at, field, message + note, hint, group)

    def all_problems(self) -> list[Problem]:
        """Every problem, in the order found (build_plan sorts them with the manifest's own)."""
        return [*self.problems, *(f.problem() for f in self.findings.values())]


def differing_vars(first: Job, second: Job) -> list[str]:
    """The variables whose values differ between two jobs (to say why they clash)."""
    names = first.vars.keys() | second.vars.keys()
    return sorted(k for k in names if first.vars.get(k) != second.vars.get(k))


def duplicate_hint(differing: list[str]) -> str:
    """The hint for two jobs that would send the same request."""
    if differing:
        return (
            f"the jobs differ only in variables no request field uses ({', '.join(differing)}): "
            "use them in a field, or remove them"
        )
    return "two jobs would send the identical request; use `repeat: N` for several generations of one request"


def parameter_typos(
    sources: Mapping[str, PathTuple], known: AbstractSet[str]
) -> Iterator[tuple[PathTuple, str, str]]:
    """(where, name, hint) of each request parameter the model does not know that looks like a typo
    of one it does, or is another API's name for one (others are sent as written)."""
    for name, source in sources.items():
        if name in known:
            continue
        suggestion = _LIKELY_MISTAKES.get(name)
        hint = (
            f"did you mean '{suggestion}'?" if suggestion else did_you_mean(name, known | JOB_SETTINGS, 0.8)
        )
        if hint:
            yield source, name, hint
