"""A delivery of chosen results (`deliver --picks/--only`) or for a client (`--for client`, or the
manifest's `deliver: {for: client}`): a `RunDelivery` that sends other files.

- team (the default): the run directory's mirror, narrowed to the chosen results when there is a
  choice: each result with its full sidecar, then results.csv, results.jsonl and report.html.
- client: the chosen (else every done) results of the current plan, each with a client sidecar
  (`results.client`), then a client results.csv and report.html; never results.jsonl, a superseded
  take, a failure, a cost, a budget, an id or an internal URL. During a run, a client delivery sends
  everything once the run is over (its report shows the whole of it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchgen.config import RunOptions
from batchgen.journal.store import JobRecord, Journal
from batchgen.results.client import client_csv, client_report, client_sidecar
from batchgen.rundir.layout import read_plan_json, result_relpath
from batchgen.sinks.base import VerifiedResult
from batchgen.sinks.oxen.batching import Outgoing
from batchgen.sinks.oxen.run import META_KEY, RunDelivery
from batchgen.sinks.oxen.wanted import done_records, result_items, sidecar_of
from batchgen.target import CLIENT, DeliveryTarget

__all__ = ["Choice", "delivery_for"]


@dataclass(frozen=True, slots=True)
class Choice:
    """Which results a delivery sends (None: every done one of the current plan) and for whom."""

    keys: frozenset[str] | None = None
    client: bool = False


def delivery_for(
    target: DeliveryTarget,
    options: RunOptions,
    api_key: str,
    journal: Journal,
    run_dir: Path,
    campaign: str,
    choice: Choice | None = None,
    **kwargs: Any,
) -> RunDelivery:
    """The delivery a target and a choice ask for: the full mirror, or a chosen or client one."""
    choice = choice or Choice(client=target.audience == CLIENT)
    if choice == Choice():
        return RunDelivery(target, options, api_key, journal, run_dir, campaign, **kwargs)
    return SelectedDelivery(target, options, api_key, journal, run_dir, campaign, choice=choice, **kwargs)


class SelectedDelivery(RunDelivery):
    """The chosen results only, and in client mode the client's files instead of the run's."""

    def __init__(self, *args: Any, choice: Choice, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.choice = choice

    async def check(self) -> None:
        await super().check()
        if self.choice.client:  # `batchgen deliver` without --for sends what the run was told to
            recorded = json.loads(self._journal.meta(META_KEY) or "{}")
            self._journal.set_meta(META_KEY, json.dumps({**recorded, "for": CLIENT}))

    def _chosen(self) -> list[JobRecord]:
        keys = self.choice.keys
        return [r for r in done_records(self._journal.records().values()) if keys is None or r.key in keys]

    async def deliver(self, result: VerifiedResult) -> None:
        if not self.choice.client and (self.choice.keys is None or result.key in self.choice.keys):
            await super().deliver(result)

    def wanted_results(self) -> list[Outgoing]:
        if not self.choice.client:
            chosen = {result_relpath(record.output_path) for record in self._chosen()}
            wanted = chosen | {sidecar_of(local) for local in chosen}
            return [item for item in super().wanted_results() if item.local in wanted]
        plan = self._plan_jobs()
        items: list[Outgoing] = []
        for record in self._chosen():
            sha256, local = record.sha256 or "", result_relpath(record.output_path)
            sidecar = client_sidecar(plan.get(record.key, {}), sha256)
            items += result_items(self.target, local, sha256, record.size or 0, sidecar)
        return items

    def wanted_files(self) -> list[Outgoing]:
        if not self.choice.client:
            return super().wanted_files()
        chosen = self._chosen()
        plan = self._plan_jobs()
        table = client_csv([(plan.get(r.key, {}), r.sha256 or "") for r in chosen])
        report = client_report(self._run_dir, {r.key for r in chosen})
        return [
            Outgoing(name, self.target.repo_path(name), len(data), data=data)
            for name, data in (("results.csv", table), ("report.html", report))
        ]

    def _plan_jobs(self) -> Mapping[str, Mapping[str, Any]]:
        plan = read_plan_json(self._run_dir)
        return {str(job.get("key")): job for job in plan.get("jobs", ()) if isinstance(job, Mapping)}
