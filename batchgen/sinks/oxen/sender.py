"""The delivery loop: files in, batched commits out.

Files are queued as results finish; the loop (`run`, a task of the caller's TaskGroup) waits LINGER_S
after the first one (or until a batch is full), then commits what it holds, one commit at a time (a
repository takes one write at a time anyway), each through `commit_once.CommitOnce`: journaled before
anything is sent, staged in a workspace, committed once, a lost answer looked up on the branch. A file
the repository refuses is refused alone; a repository that refuses the delivery, or keeps failing,
stops the delivery for this run (the journal keeps what is missing for `batchgen deliver`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from batchgen.client.repos import RepoApi
from batchgen.errors import ApiError
from batchgen.journal.deliveries import DeliveryLedger
from batchgen.journal.outbox import CannotTell
from batchgen.sinks.oxen.batching import (
    MAX_BATCH_FILES,
    Batch,
    Outgoing,
    commit_message,
    plan_batches,
)
from batchgen.sinks.oxen.commit_once import CommitOnce, Outcome
from batchgen.sinks.oxen.local_files import Unreadable, local_path, read_checked
from batchgen.sinks.oxen.staging import RepositoryRefused

log = logging.getLogger(__name__)

LINGER_S = 0.5  # after the first file arrives, wait this long for others to share its commit
CHUNK_FILES = 1000  # files taken from the queue at a time (a sweep of a large run is read in parts)


@dataclass(slots=True)
class Tally:
    """What this process did and found, for progress and the summary."""

    wanted: dict[str, str | None] = field(default_factory=dict)  # repository path -> sha256 (once known)
    delivered: set[str] = field(default_factory=set)  # wanted paths found delivered with that sha256
    failed: dict[str, str] = field(default_factory=dict)  # repository path -> why it was not delivered
    files_sent: int = 0  # files in requests that made a commit
    commits: int = 0


class Sender:
    """Sends queued files to one target: `run()` is its loop (a task of the caller's TaskGroup, until
    cancelled), `put()` queues files, `flush()` waits until what is queued is sent (or given up).
    `jobs_done` says how far the run is, for commit messages; `on_change` is told (delivered, wanted)
    after every file delivered or failed (a progress display)."""

    def __init__(
        self,
        api: RepoApi,
        ledger: DeliveryLedger,
        run_dir: Path,
        campaign: str,
        *,
        linger_s: float = LINGER_S,
        max_files: int = MAX_BATCH_FILES,
        jobs_done: Callable[[], tuple[int, int] | None] = lambda: None,
        on_change: Callable[[tuple[int, int]], None] = lambda progress: None,
    ) -> None:
        self.api, self.ledger, self.run_dir, self.campaign = api, ledger, run_dir, campaign
        self.commits = CommitOnce(api, ledger, run_dir)
        self.linger_s, self.max_files = linger_s, max_files
        self._jobs_done, self._on_change = jobs_done, on_change
        self.head: str | None = None  # a commit known to be on the branch before the next request
        self.tally = Tally()
        self.stopped: str | None = None  # why nothing more is sent in this run
        self.leftover_workspaces: list[str] = []  # made by this run directory, not removable yet
        self._queue: dict[str, Outgoing] = {}
        self._work, self._hurry, self._idle = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self._flushing = False
        self._failure: Exception | None = None  # what ended the loop, raised by `flush`

    # -- the surface ---------------------------------------------------------------------------

    async def check(self) -> None:
        """The repository and branch exist and the key can write (else UsageError); the head is known."""
        self.head = await self.api.check()

    async def run(self, first: Callable[[], Awaitable[None]] | None = None) -> None:
        """Run `first` (the resolution and the sweep of an earlier run), then send what is queued until
        cancelled. An error ends the loop and is raised by `flush`: a delivery that breaks never cuts
        short the run it delivers."""
        try:
            if first is not None:
                await first()
            await self._loop()
        except Exception as exc:
            self._failure = exc
            self._idle.set()

    def put(self, items: Iterable[Outgoing]) -> None:
        for item in items:
            self._queue[item.repo_path] = item
            known = self.tally.wanted.get(item.repo_path)
            if item.sha256 is not None and known is not None and known != item.sha256:
                self.tally.delivered.discard(item.repo_path)  # a new version of it
            self.tally.wanted[item.repo_path] = item.sha256 or known
        if self._queue and self._failure is None:
            self._idle.clear()
            self._work.set()
        if len(self._queue) >= self.max_files:
            self._hurry.set()

    async def flush(self) -> None:
        """Send everything queued now, without lingering, and wait until it is sent (or given up); the
        loop must be running."""
        self._flushing = True
        self._hurry.set()
        await self._idle.wait()
        if self._failure is not None:
            raise self._failure
        # Workspaces whose removal failed are tried again now: a run that exits 0 leaves none behind.
        self.leftover_workspaces = await self.commits.remove_remembered()

    def progress(self) -> tuple[int, int]:
        return len(self.tally.delivered), len(self.tally.wanted)

    def not_delivered(self) -> dict[str, str]:
        """Every wanted file not delivered, with why."""
        why = "not sent: the delivery had stopped" if self.stopped else "not sent"
        return {
            path: self.tally.failed.get(path, why)
            for path in self.tally.wanted
            if path not in self.tally.delivered
        }

    # -- the loop ------------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._work.clear()
                await self._work.wait()
            if not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.linger_s):
                        await self._hurry.wait()
            items = list(itertools.islice(self._queue.values(), CHUNK_FILES))
            for item in items:
                del self._queue[item.repo_path]
            if not self._flushing and len(self._queue) < self.max_files:
                self._hurry.clear()
            await self._send_all(items)

    async def _send_all(self, items: list[Outgoing]) -> None:
        prepared = await asyncio.to_thread(self._prepare, items)
        todo: list[Outgoing] = []
        for item, problem in prepared:
            if problem is not None:
                self._fail(item, problem, journal=item.sha256 is not None)
            elif item.sha256 is not None and self.ledger.is_delivered(item.repo_path, item.sha256):
                self._mark_delivered([item])
            else:
                todo.append(item)
        for batch in plan_batches(todo, max_files=self.max_files):
            if self.stopped is None:
                await self._commit(batch)

    def _prepare(self, items: list[Outgoing]) -> list[tuple[Outgoing, str | None]]:
        """In a worker thread: sizes, and the bytes and sha256 of files not hashed yet (sidecars and run
        files are small; results are hashed already and read when they are staged)."""
        done: list[tuple[Outgoing, str | None]] = []
        for item in items:
            try:
                if item.data is not None or item.sha256 is None:
                    data = read_checked(self.run_dir, item)  # the bytes it holds, else its file's
                    sha = item.sha256 or hashlib.sha256(data).hexdigest()
                    done.append((replace(item, data=data, sha256=sha, size=len(data)), None))
                else:
                    done.append((replace(item, size=local_path(self.run_dir, item).stat().st_size), None))
            except Unreadable as exc:
                done.append((item, str(exc)))
            except OSError as exc:
                done.append((item, f"cannot read {item.local}: {exc.strerror or exc}"))
        return done

    # -- one batch -----------------------------------------------------------------------------

    async def _commit(self, batch: Batch) -> None:
        def message(token: str) -> str:
            return commit_message(self.campaign, batch, token, self._jobs_done())

        try:
            outcome = await self.commits.send(batch, self.head, message)
        except OSError as exc:  # a local read that went wrong past every per-file check: this batch only
            log.exception("delivery of %d file(s) broke off", len(batch.items))
            why = f"not sent: {exc.strerror or exc} (the next run looks for what was sent)"
            outcome = Outcome(failed={item.repo_path: why for item in batch.items})
        self._apply(batch, outcome)

    def _apply(self, batch: Batch, outcome: Outcome) -> None:
        by_path = {item.repo_path: item for item in batch.items}
        if outcome.commit_id is not None:
            self.head = outcome.commit_id
            self.tally.commits += 1
            self.tally.files_sent += outcome.files_sent
        self._mark_delivered(by_path[p] for p in outcome.delivered)
        for path, why in outcome.failed.items():
            self._fail(by_path[path], why, journal=False)
        if outcome.stopped is not None:
            self._stop(outcome.stopped)
        if outcome.commit_id is not None:
            done, wanted = self.progress()
            log.info(
                "delivered %d file(s) to %s in commit %s (%d/%d)",
                outcome.files_sent,
                batch.directory or "the repository",
                outcome.commit_id[:12],
                done,
                wanted,
            )

    # -- outcomes ------------------------------------------------------------------------------

    def _mark_delivered(self, items: Iterable[Outgoing]) -> None:
        for item in items:
            self.tally.wanted[item.repo_path] = item.sha256
            self.tally.delivered.add(item.repo_path)
            self.tally.failed.pop(item.repo_path, None)
        self._on_change(self.progress())

    def _fail(self, item: Outgoing, why: str, *, journal: bool) -> None:
        if journal:
            self.ledger.failed([(item.repo_path, str(item.sha256))], why)
        self.tally.failed[item.repo_path] = why
        log.warning("not delivered: %s: %s", item.local, why)
        self._on_change(self.progress())

    def _stop(self, why: str) -> None:
        if self.stopped is None:
            self.stopped = why
            log.error("delivery stopped for this run: %s; `batchgen deliver` sends what is missing", why)

    async def resolve_earlier(self) -> None:
        """Commits a killed process made or left half done: delivered, finished, or to send again."""
        try:
            await self.commits.resolve_earlier(self._leftover_message)
        except (ApiError, CannotTell) as exc:  # left `sending`: the next run looks again before sending
            self._stop(f"cannot tell whether earlier uploads were made ({exc})")
        except RepositoryRefused as exc:
            self._stop(str(exc))

    def _leftover_message(self, token: str, files: int) -> str:
        return f"batchgen {self.campaign}: {files} file(s) staged by a stopped run [batchgen:{token}]"
