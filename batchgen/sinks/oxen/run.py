"""One run's delivery to an Oxen repository, a `ResultSink` like any other (`run_with_sinks` drives it):
`check` before paid work (a missing or read-only repository or branch: UsageError, nothing sent); `run`,
the sending loop, in the run's TaskGroup, which first resolves what an earlier process sent without
hearing back and queues the results earlier runs left undelivered; `deliver` queues each result with
its sidecar as it finishes; `finish` sends what is left, then results.csv/.jsonl and report.html;
`summary` says what is there and what is not, with why.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batchgen.client.api import OxenClient
from batchgen.client.repos import RepoApi
from batchgen.config import RunOptions, api_origin
from batchgen.journal.deliveries import DeliveryLedger
from batchgen.journal.store import Journal
from batchgen.rundir.layout import VIDEOS_DIR
from batchgen.sinks.base import ResultSink, VerifiedResult
from batchgen.sinks.oxen.batching import Outgoing
from batchgen.sinks.oxen.sender import LINGER_S, Sender
from batchgen.sinks.oxen.wanted import done_results, result_items, run_files
from batchgen.states import JobState
from batchgen.target import DeliveryTarget

log = logging.getLogger(__name__)

META_KEY = "deliver"  # the journal's meta entry naming the run's target, for `batchgen deliver`


@dataclass(frozen=True, slots=True)
class DeliverySummary:
    """Where the files went, how many of them are there, and what is missing with why."""

    target: str  # ns/repo@branch:path
    wanted: int
    delivered: int
    files_sent: int  # in this process
    commits: int  # made by this process
    missing: tuple[tuple[str, str], ...]  # (repository path, why) of every file not delivered
    stopped: str | None = None  # why sending stopped early
    sandbox: bool = False
    leftover_workspaces: tuple[str, ...] = ()  # workspaces of this run directory that could not be removed

    @property
    def complete(self) -> bool:
        return not self.missing and not self.leftover_workspaces


class RunDelivery(ResultSink):
    """The delivery of one run directory to one target."""

    name = "oxen"

    def __init__(
        self,
        target: DeliveryTarget,
        options: RunOptions,
        api_key: str,
        journal: Journal,
        run_dir: Path,
        campaign: str,
        *,
        linger_s: float = LINGER_S,
        on_change: Callable[[tuple[int, int]], None] = lambda progress: None,
    ) -> None:
        self.target = target
        self._journal, self._run_dir, self._run_root = journal, run_dir, run_dir.resolve()
        self._campaign, self._sandbox = campaign, options.sandbox
        self._client = OxenClient(options.api_base, api_key, timeouts=options.timeouts, retry=options.retry)
        origin = api_origin(options.api_base)
        if options.sandbox:  # each sandbox session's emulator starts empty, whatever port it gets
            origin += f"#sandbox-{secrets.token_hex(6)}"
        self.sender = Sender(
            RepoApi(self._client, target),
            DeliveryLedger(journal, target.ledger_key(origin)),
            run_dir,
            campaign,
            linger_s=linger_s,
            jobs_done=self._jobs_done,
            on_change=on_change,
        )

    async def check(self) -> None:
        """Before anything is sent: the repository exists (or is created), the branch exists (or the
        repository is empty), the key can write. Raises UsageError otherwise."""
        target = self.target
        async with self._client:
            await self.sender.check()
        record = {"repo": f"{target.namespace}/{target.repo}", "branch": target.branch, "path": target.path}
        self._journal.set_meta(
            META_KEY, json.dumps({**record, "create": target.create, "name": self._campaign})
        )
        head = self.sender.head or "none yet: empty repository"
        log.info("delivering to %s (branch head %s)", target.describe(), head)

    async def run(self) -> None:
        """Resolve requests an earlier process sent without hearing back, queue the results earlier
        runs left undelivered, then send what is queued (until cancelled)."""
        async with self._client:
            await self.sender.run(self._sweep_earlier)

    async def _sweep_earlier(self) -> None:
        await self.sender.resolve_earlier()
        self.sender.put(self.wanted_results())

    async def deliver(self, result: VerifiedResult) -> None:
        """A result of the current plan landed in videos/: queue it with its sidecar. Delivery never
        changes a job's state."""
        if not self._journal.get(result.key).planned:
            return
        try:
            local = result.path.relative_to(self._run_root).as_posix()
        except ValueError:
            return
        if local.startswith(f"{VIDEOS_DIR}/"):
            self.sender.put(result_items(self.target, local, result.sha256, result.size, result.metadata))

    async def finish(self) -> None:
        """Send whatever is left (results the run found done on disk, earlier failures), then those of
        the run's files that exist; wait for all of it."""
        self.sender.put(self.wanted_results())
        self.sender.put(self.wanted_files())
        await self.sender.flush()

    def wanted_results(self) -> list[Outgoing]:
        """The results this delivery sends, each with its sidecar: every done one of the current plan."""
        return done_results(self.target, self._journal.records().values())

    def wanted_files(self) -> list[Outgoing]:
        """The run's files it sends beside them (those that exist)."""
        return run_files(self.target, self._run_dir)

    def progress(self) -> tuple[int, int]:
        return self.sender.progress()

    def summary(self) -> DeliverySummary:
        """What the delivery reports at the end (the run's result carries it)."""
        sender = self.sender
        delivered, wanted = sender.progress()
        return DeliverySummary(
            target=self.target.describe(),
            wanted=wanted,
            delivered=delivered,
            files_sent=sender.tally.files_sent,
            commits=sender.tally.commits,
            missing=tuple(sorted(sender.not_delivered().items())),
            stopped=sender.stopped,
            sandbox=self._sandbox,
            leftover_workspaces=tuple(sender.leftover_workspaces),
        )

    def _jobs_done(self) -> tuple[int, int]:
        planned = [r for r in self._journal.records().values() if r.planned]
        return sum(1 for r in planned if r.state is JobState.DONE), len(planned)
