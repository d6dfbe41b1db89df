"""A run directory's report data: the cards and header of report.html from the plan and the results.

`ReportBuilder` takes a job at a time (the end of a run feeds it as it writes the results files);
`load_report` feeds it from plan.json and results.jsonl (`batchgen report` on a directory without
its journal).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from batchgen.errors import ManifestError, UsageError
from batchgen.journal.spend import Spend, counted
from batchgen.manifest.yaml_tree import Tree, compose
from batchgen.registry.pricing import format_usd
from batchgen.results.report import TIMES, PlannedJob, plan_entries, prompt_of
from batchgen.results.report_html import (
    CHARGED_STATES,
    Money,
    ReportCard,
    ReportHeader,
    amount_usd,
    media_href,
)
from batchgen.results.report_view import display_value
from batchgen.rundir.layout import PLAN_NAME, read_plan_json

__all__ = ["ReportBuilder", "load_report", "read_plan"]


class ReportBuilder:
    """The cards and the header's figures, a job at a time: the end of a run adds each job as its
    results row is written, instead of holding every row and reading them back."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.cards: list[ReportCard] = []
        self._first_start: str | None = None
        self._last_end: str | None = None
        self._last_moment: str | None = None

    def add(self, job: PlannedJob, row: Mapping[str, Any]) -> None:
        """The job's card, from its plan entry and its results row ({} for a job never started)."""
        self.cards.append(_card_of(job, row, self.run_dir))
        start = row.get("submitted_at")
        end = row.get("downloaded_at") or row.get("completed_at")
        if isinstance(start, str) and (self._first_start is None or start < self._first_start):
            self._first_start = start
        if isinstance(end, str) and (self._last_end is None or end > self._last_end):
            self._last_end = end
        for name in TIMES:
            moment = row.get(name)
            if isinstance(moment, str) and (self._last_moment is None or moment > self._last_moment):
                self._last_moment = moment

    def header(
        self,
        campaign: str,
        *,
        spend: Spend | None = None,
        generated_at: str | None = None,
        budget_usd: Money | None = None,
        sandbox: bool = False,
        api_origin: str | None = None,
        show_money: bool = True,
    ) -> ReportHeader:
        """`spend`: the run directory's (`batchgen.journal.spend`); without it, the quotes of the cards whose
        generation exists (a results file from before batchgen kept the spend). The budget (unless
        given) and the `report:` settings come from the run's manifest.yaml copy."""
        counts = dict(Counter(card.state for card in self.cards))
        note = None
        if spend is not None:
            note = counted(spend) + (", which have no card" if spend.outside_generations else "")
        manifest_budget, title_template, group_by = _manifest_settings(self.run_dir)
        return ReportHeader(
            campaign=campaign,
            # "As of" the run's last recorded moment, not the clock: a rerun that changes nothing
            # writes the same bytes, so a delivery does not commit a new report.html for it.
            generated_at=generated_at or self._last_moment or "before any submission",
            counts=counts,
            spend_usd=spend.total if spend is not None else _spend(self.cards),
            spend_note=note,
            budget_usd=budget_usd if budget_usd is not None else manifest_budget,
            sandbox=sandbox,
            api_origin=api_origin,
            ran_from=self._first_start,
            ran_to=self._last_end,
            show_money=show_money,
            title_template=title_template,
            group_by=group_by,
        )


# What a card and the header read of a results row (the rest of a row is not kept in memory).
_ROW_FIELDS = (
    "state",
    "output_path",
    "generation_id",
    "error",
    "kept_path",
    "sha256",
    "billed_cost_usd",
    *TIMES,
)


def load_report(
    run_dir: Path,
    *,
    generated_at: str | None = None,
    budget_usd: Money | None = None,
    sandbox: bool = False,
    api_origin: str | None = None,
    show_money: bool = True,
) -> tuple[ReportHeader, list[ReportCard]]:
    """Header and cards from `run_dir`'s plan.json (the jobs) and results.jsonl (their outcome).

    A job with no results row is `pending`. The budget defaults to `run.budget_usd` of the run's
    manifest.yaml copy; sandbox and API origin are not recorded in the run directory, so pass them;
    `show_money` False leaves every amount out of the page.
    """
    plan = read_plan(run_dir)
    rows, spent = _read_results(run_dir)
    builder = ReportBuilder(run_dir)
    for entry in plan_entries(plan, run_dir / PLAN_NAME):  # superseded and older jobs: not shown
        builder.add(entry, rows.get(entry.key) or {})
    header = builder.header(
        str(plan.get("name") or run_dir.name),
        generated_at=generated_at,
        budget_usd=budget_usd,
        sandbox=sandbox,
        api_origin=api_origin,
        show_money=show_money,
    )
    if spent is not None:
        total, outside = spent
        aside = (
            f"; {format_usd(outside)} of it for jobs no longer in the plan, which have no card"
            if outside
            else ""
        )
        header = replace(
            header, spend_usd=total, spend_note=f"by this run directory, from results.jsonl{aside}"
        )
    return header, builder.cards


def read_plan(run_dir: Path) -> dict[str, Any]:
    """plan.json, as batchgen writes it (UsageError otherwise)."""
    path = run_dir / PLAN_NAME
    try:
        plan = read_plan_json(run_dir)
    except FileNotFoundError:
        raise UsageError(f"{run_dir} is not a batchgen run directory (no plan.json)") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    if not isinstance(plan, dict) or plan.get("format") != "batchgen-plan/1":
        raise UsageError(f"{path} is not a batchgen plan (format batchgen-plan/1)")
    return plan


def _read_results(run_dir: Path) -> tuple[dict[str, dict[str, Any]], tuple[Decimal, Decimal] | None]:
    """The rows by key (what a card reads of them), and the run directory's spend from their
    `spent_usd`: (total, of which for jobs no longer planned), None when a row has none (a results
    file from before batchgen kept it)."""
    path = run_dir / "results.jsonl"
    rows: dict[str, dict[str, Any]] = {}
    total: Decimal | None = Decimal(0)
    outside = Decimal(0)
    try:
        with path.open(encoding="utf-8") as file:
            for number, line in enumerate(file, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise UsageError(f"{path}:{number}: not JSON: {exc}") from exc
                if isinstance(row, dict) and isinstance(row.get("key"), str):
                    rows[row["key"]] = {name: row[name] for name in _ROW_FIELDS if row.get(name) is not None}
                    spent = amount_usd(row.get("spent_usd"))
                    total = None if total is None or spent is None else total + spent
                    if row.get("planned") is False:
                        outside += spent or Decimal(0)
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    return rows, None if total is None or not rows else (total, outside)


def _card_of(job: PlannedJob, row: Mapping[str, Any], run_dir: Path) -> ReportCard:
    path = _str(row.get("output_path")) or f"videos/{job.output_path}"
    exists = media_href(path) is not None and os.path.isfile(os.path.join(run_dir, path))
    return ReportCard(
        key=job.key,
        index=job.index,
        name=job.name,
        title=job.label,
        replica=job.replica,
        state=_str(row.get("state")) or "pending",
        video_path=path if exists else None,
        media_type=job.media_type or "video",
        vars={
            str(k): v if isinstance(v, str | int | float) and not isinstance(v, bool) else display_value(v)
            for k, v in job.vars.items()
        },
        prompt=prompt_of(job.request),
        aspect_ratio=_str(job.request.get("aspect_ratio")),
        duration_s=job.duration_s,
        cost_usd=_str(job.cost_usd),
        generation_id=_str(row.get("generation_id")),
        error=_str(row.get("error")),
        sha256=_str(row.get("sha256")),
        model=job.model or None,
        billed_usd=_str(row.get("billed_cost_usd")),
        finished_at=_str(row.get("completed_at")),
        kept_path=_str(row.get("kept_path")),
    )


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _spend(cards: Sequence[ReportCard]) -> Decimal | None:
    total = Decimal(0)
    for card in cards:
        if card.state in CHARGED_STATES:
            if card.cost_usd is None:
                return None
            total += Decimal(str(card.cost_usd))
    return total


def _manifest_settings(run_dir: Path) -> tuple[str | None, str | None, str | None]:
    """(run.budget_usd, report.title, report.group_by) of the run's manifest.yaml copy, each None
    when it has none (or the copy cannot be read)."""
    try:
        # Read as the run read it: libyaml where it can, and a "\ud83d\ude00" escape (which libyaml
        # refuses) as its one character.
        text = (run_dir / "manifest.yaml").read_text(encoding="utf-8")
        manifest = Tree("manifest.yaml").convert(compose(text, "manifest.yaml"), ())
    except (OSError, ValueError, ManifestError):
        return None, None, None
    run, report = (manifest.get(key) if isinstance(manifest, dict) else None for key in ("run", "report"))
    budget = run.get("budget_usd") if isinstance(run, dict) else None
    if isinstance(budget, bool) or not isinstance(budget, int | float | str):
        budget = None
    title, group_by = (report.get(key) if isinstance(report, dict) else None for key in ("title", "group_by"))
    return (
        None if budget is None else str(budget),
        title if isinstance(title, str) else None,
        group_by if isinstance(group_by, str) else None,
    )
