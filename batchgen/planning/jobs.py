"""What a plan is: `Job` (one generation to run: request, key, path, quote) and `Plan` (every job)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from batchgen.manifest.model import LocalAsset, Location
from batchgen.naming import TitleTemplate, readable_names, shown_or_fallback, template_names

__all__ = ["Job", "Plan", "titled"]


@dataclass(frozen=True, slots=True)
class Job:
    """One generation to run: the exact request, its key, where its result goes, what it costs."""

    key: str  # sha256 hex of the canonical {"model", "request", "replica"}
    index: int  # position in plan order, from 0
    name: str  # the job spec's name
    replica: int
    model: str
    media_type: str  # "video" | "image"
    request: Mapping[str, Any]  # exactly the JSON body to POST (local assets as placeholders); do not mutate
    output_path: str  # relative POSIX path under the run's videos/ directory
    vars: Mapping[str, Any]  # the user variables of this expansion (built-ins are fields above)
    assets: tuple[LocalAsset, ...]  # local assets the request needs uploaded, in first-use order
    location: Location  # the job spec's `- name:` line
    cost_usd: Decimal | None
    duration_s: int | None
    #: its readable name (`hero · mug · 9:16 · take 2`, batchgen.naming), unique within its plan; ""
    #: for a job made outside a plan (then `label` falls back to its name and key prefix)
    title: str = ""

    @property
    def label(self) -> str:
        """How a person is told about this job: its title, or its name and key prefix."""
        return shown_or_fallback(self.title, self.name, self.key)


@dataclass(frozen=True, slots=True)
class Plan:
    """Every job of a manifest, in plan order, and the total quote (None if any job has no quote)."""

    manifest_path: Path
    name: str
    jobs: tuple[Job, ...]
    total_cost_usd: Decimal | None
    #: per model: parameter defaults the service may fill in and echo (see registry.echoable_defaults)
    model_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def count_by_model(self) -> dict[str, int]:
        """Jobs per model, in order of first appearance."""
        return _count(job.model for job in self.jobs)

    def count_by_aspect_ratio(self) -> dict[str, int]:
        """Jobs per requested aspect ratio ("model default" when the request sets none)."""
        return _count(str(job.request.get("aspect_ratio", "model default")) for job in self.jobs)

    def cost_of(self, jobs: tuple[Job, ...] | list[Job]) -> Decimal | None:
        """The summed quote of `jobs` (None if any of them has none)."""
        total = Decimal(0)
        for job in jobs:
            if job.cost_usd is None:
                return None
            total += job.cost_usd
        return total


def titled(jobs: Sequence[Job], template: str | None = None) -> tuple[Job, ...]:
    """The plan's jobs, each with its readable name (batchgen.naming), by the manifest's
    `report.title` `template` when it has one. A name needs the whole plan, so it is set here, once,
    before anyone sees the jobs: copying each with replace() instead would cost a second per 100,000
    jobs."""
    titles = template_names(jobs, TitleTemplate.parse(template)) if template else readable_names(jobs)
    for job in jobs:
        object.__setattr__(job, "title", titles[job.key])
    return tuple(jobs)


def _count(items: Iterator[str] | Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts
