"""One run's delivery: the check before paid work, the sink results go through as they finish, the
sweep of what earlier runs left undelivered, the run's files at the end, and the summary.

```python
delivery = RunDelivery.for_run(options, key, journal, run_dir, plan)  # a no-op without a target
await delivery.check()        # missing / read-only repository or branch: UsageError, nothing sent
runner = Runner(..., sinks=delivery.sinks())
delivery.start()              # earlier requests resolved, earlier results queued
...                           # results go up as they finish (DeliverySink)
summary = await delivery.finish()   # anything left, then results.csv/.jsonl and report.html
await delivery.aclose()
```
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen.client.api import OxenClient
from batchgen.client.repos import RepoApi
from batchgen.config import RunOptions, api_origin
from batchgen.journal.deliveries import DeliveryLedger
from batchgen.journal.store import Journal
from batchgen.sinks.base import LocalSink, ResultSink, VerifiedResult
from batchgen.sinks.oxen.sender import LINGER_S, Sender
from batchgen.sinks.oxen.wanted import RUN_FILES, done_results, is_result_path, result_items, run_files
from batchgen.states import JobState
from batchgen.target import DeliveryTarget

if TYPE_CHECKING:
    from batchgen.planning import Plan
    from batchgen.run.runner import RunStats

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


class DeliverySink:
    """The ResultSink of a run with a delivery target: a verified result is queued for upload with its
    sidecar as soon as it is done. Delivery never changes a job's state."""

    name = "oxen"

    def __init__(self, delivery: RunDelivery) -> None:
        self._delivery = delivery

    def land(self, result: VerifiedResult) -> None:
        """Nothing to do in the worker thread: the upload happens on the loop."""

    async def deliver(self, result: VerifiedResult) -> None:
        self._delivery.result_done(result)

    async def close(self) -> None:
        """The run's results are all queued; `RunDelivery.finish` sends and waits."""


class RunDelivery:
    """The delivery of one run directory to one target (every method is a no-op without a target)."""

    def __init__(
        self,
        target: DeliveryTarget | None,
        *,
        api_base: str,
        api_key: str,
        journal: Journal,
        run_dir: Path,
        campaign: str,
        options: RunOptions,
        planned: frozenset[str] | None = None,
        linger_s: float = LINGER_S,
    ) -> None:
        self.target = target
        self._api_base, self._key = api_base, api_key
        self._journal, self._run_dir, self._run_root = journal, run_dir, run_dir.resolve()
        self._campaign, self._options, self._planned = campaign, options, planned
        self._linger_s = linger_s
        self._client: OxenClient | None = None
        self.sender: Sender | None = None
        self.on_change: Callable[[], None] = lambda: None

    @classmethod
    def for_run(
        cls, options: RunOptions, key: str, journal: Journal, run_dir: Path, plan: Plan
    ) -> RunDelivery:
        return cls(
            options.deliver,
            api_base=options.api_base,
            api_key=key,
            journal=journal,
            run_dir=run_dir,
            campaign=plan.name,
            options=options,
            planned=frozenset(job.key for job in plan.jobs),
        )

    async def check(self) -> None:
        """Before anything is sent: the repository exists (or is created), the branch exists (or the
        repository is empty), the key can write. Raises UsageError otherwise."""
        target = self.target
        if target is None:
            return
        options = self._options
        self._client = await OxenClient(
            self._api_base, self._key, timeouts=options.timeouts, retry=options.retry
        ).__aenter__()
        api = RepoApi(self._client, target)
        head = await api.check()
        origin = api_origin(self._api_base)
        if options.sandbox:  # each sandbox session's emulator starts empty, whatever port it gets
            origin += f"#sandbox-{secrets.token_hex(6)}"
        ledger = DeliveryLedger(self._journal, target.ledger_key(origin))
        sender = Sender(
            api,
            ledger,
            self._run_dir,
            self._campaign,
            request_s=options.timeouts.request_s,
            policy=options.retry,
            linger_s=self._linger_s,
        )
        sender.head = head
        sender.jobs_done = self._jobs_done
        sender.on_change = lambda: self.on_change()
        self.sender = sender
        record = {"repo": f"{target.namespace}/{target.repo}", "branch": target.branch, "path": target.path}
        self._journal.set_meta(
            META_KEY, json.dumps({**record, "create": target.create, "name": self._campaign})
        )
        log.info("delivering to %s (branch head %s)", target.describe(), head or "none yet: empty repository")

    def sinks(self) -> list[ResultSink] | None:
        """The run's sinks: the run directory, then the repository (None: the runner's default)."""
        return None if self.sender is None else [LocalSink(), DeliverySink(self)]

    def start(self) -> None:
        """Resolve requests an earlier process sent without hearing back, queue the results earlier runs
        left undelivered, and start sending (in a task of its own)."""
        if self.sender is not None:
            self.sender.start(self._sweep_earlier)

    async def _sweep_earlier(self) -> None:
        assert self.sender is not None and self.target is not None
        await self.sender.resolve_earlier()
        self.sender.put(done_results(self.target, self._journal.records().values()))

    def result_done(self, result: VerifiedResult) -> None:
        """A result of the current plan landed in videos/: queue it with its sidecar."""
        if self.sender is None or self.target is None:
            return
        if self._planned is not None and result.key not in self._planned:
            return
        try:
            local = result.path.relative_to(self._run_root).as_posix()
        except ValueError:
            return
        if is_result_path(local):
            self.sender.put(result_items(self.target, local, result.sha256, result.size, result.metadata))

    async def finish(self, files: Iterable[str] = RUN_FILES) -> DeliverySummary | None:
        """Send whatever is left (results the run found done on disk, earlier failures), then those of
        the run's `files` that exist; wait for all of it; say what is there and what is not."""
        if self.sender is None or self.target is None:
            return None
        self.sender.put(done_results(self.target, self._journal.records().values()))
        self.sender.put(run_files(self.target, self._run_dir, files))
        await self.sender.flush()
        return self.summary()

    def summary(self) -> DeliverySummary | None:
        sender, target = self.sender, self.target
        if sender is None or target is None:
            return None
        delivered, wanted = sender.progress()
        return DeliverySummary(
            target=target.describe(),
            wanted=wanted,
            delivered=delivered,
            files_sent=sender.tally.files_sent,
            commits=sender.tally.commits,
            missing=tuple(sorted(sender.not_delivered().items())),
            stopped=sender.stopped,
            sandbox=self._options.sandbox,
            leftover_workspaces=tuple(sender.leftover_workspaces),
        )

    async def aclose(self) -> None:
        """Stop sending (what is in flight is journaled `sending`, and looked for next time)."""
        if self.sender is not None:
            await self.sender.aclose()
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None

    def stats(self, snapshot: Callable[[], RunStats]) -> Callable[[], RunStats]:
        """The run's progress snapshot, with delivered/total files when delivering."""
        sender = self.sender
        if sender is None:
            return snapshot
        return lambda: replace(snapshot(), delivered=sender.progress())

    def _jobs_done(self) -> tuple[int, int]:
        planned = [r for r in self._journal.records().values() if r.planned]
        return sum(1 for r in planned if r.state is JobState.DONE), len(planned)
