"""The delivery loop: files in, batched commits out, each request journaled before it is sent.

Files are queued as results finish; the loop waits LINGER_S after the first one (or until a batch is
full), then sends what it holds, one directory per request, one request at a time (a repository
takes one write at a time anyway). Every request is journaled `sending` (with its token and the
branch head) before it goes; its answer journals `delivered` with the commit id. After a lost answer
(a cut connection, a timeout, a 5xx) the branch is looked at, at once and again two request timeouts
later, and the request is sent again only if its commit is not there. A refused request is cut in
halves until the files refused are alone; a repository that refuses everything, or keeps failing,
stops the delivery for this run (the journal keeps what is missing for `batchgen deliver`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

from batchgen.config import RetryPolicy
from batchgen.delivery.batching import (
    MAX_BATCH_BYTES,
    MAX_BATCH_FILES,
    Batch,
    Outgoing,
    commit_message,
    plan_batches,
    upload_timeout_s,
)
from batchgen.delivery.ledger import SENDING, DeliveryLedger
from batchgen.delivery.repo_api import RepoApi
from batchgen.delivery.resolve import files_on_branch, find_tokens
from batchgen.errors import ApiError, ApiStatusError
from batchgen.retry import Action, backoff, decide
from batchgen.rundir import UnsafePathError, ensure_inside

log = logging.getLogger(__name__)

LINGER_S = 0.5  # after the first file arrives, wait this long for others to share its commit
CHUNK_FILES = 1000  # files taken from the queue at a time (a sweep of a large run is read in parts)
_SPLIT_STATUSES = frozenset({400, 413, 422})  # refusals that may be about one file of the batch
_TARGET_STATUSES = frozenset({401, 403, 404})  # refusals of the repository itself: stop


class Next(Enum):
    AGAIN = "again"  # send the batch again
    SETTLED = "settled"  # nothing more to do with it in this run


@dataclass(slots=True)
class Tally:
    """What this process did and found, for progress and the summary."""

    wanted: dict[str, str | None] = field(default_factory=dict)  # repository path -> sha256 (once known)
    delivered: set[str] = field(default_factory=set)  # wanted paths found delivered with that sha256
    failed: dict[str, str] = field(default_factory=dict)  # repository path -> why it was not delivered
    files_sent: int = 0  # files in requests that made a commit
    commits: int = 0


class Sender:
    """Sends queued files to one target. `start()` it on the loop, `put()` files, `flush()` to wait."""

    def __init__(
        self,
        api: RepoApi,
        ledger: DeliveryLedger,
        run_dir: Path,
        campaign: str,
        *,
        request_s: float,
        policy: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        linger_s: float = LINGER_S,
        max_files: int = MAX_BATCH_FILES,
        max_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self.api, self.ledger, self.run_dir, self.campaign = api, ledger, run_dir, campaign
        self.request_s, self.policy, self._sleep = request_s, policy, sleep
        self.linger_s, self.max_files, self.max_bytes = linger_s, max_files, max_bytes
        self.head: str | None = None  # a commit known to be on the branch before the next request
        self.tally = Tally()
        self.stopped: str | None = None  # why nothing more is sent in this run
        self.jobs_done: Callable[[], tuple[int, int] | None] = lambda: None
        self.on_change: Callable[[], None] = lambda: None
        self._queue: dict[str, Outgoing] = {}
        self._work, self._hurry, self._idle = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self._flushing = False
        self._rng = random.Random()
        self._task: asyncio.Task[None] | None = None

    # -- the surface ---------------------------------------------------------------------------

    def start(self, first: Callable[[], Awaitable[None]] | None = None) -> None:
        """Run `first` (the resolution and the sweep of an earlier run), then the loop, in a task."""
        self._task = asyncio.create_task(self._main(first), name="deliver")

    def put(self, items: Iterable[Outgoing]) -> None:
        for item in items:
            self._queue[item.repo_path] = item
            known = self.tally.wanted.get(item.repo_path)
            if item.sha256 is not None and known is not None and known != item.sha256:
                self.tally.delivered.discard(item.repo_path)  # a new version of it
            self.tally.wanted[item.repo_path] = item.sha256 or known
        if self._queue:
            self._idle.clear()
            self._work.set()
        if len(self._queue) >= self.max_files:
            self._hurry.set()

    async def flush(self) -> None:
        """Send everything queued now, without lingering, and wait until it is sent (or given up)."""
        self._flushing = True
        self._hurry.set()
        if self._task is None:
            return
        idle = asyncio.ensure_future(self._idle.wait())
        try:
            await asyncio.wait({idle, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
        if self._task.done():
            self._task.result()  # its error, if it failed

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

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

    async def _main(self, first: Callable[[], Awaitable[None]] | None) -> None:
        if first is not None:
            await first()
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
                self._fail([item], problem, journal=item.sha256 is not None)
            elif item.sha256 is not None and self.ledger.is_delivered(item.repo_path, item.sha256):
                self._mark_delivered([item])
            else:
                todo.append(item)
        for batch in plan_batches(todo, max_files=self.max_files, max_bytes=self.max_bytes):
            if self.stopped is None:
                await self._send_batch(batch)

    def _prepare(self, items: list[Outgoing]) -> list[tuple[Outgoing, str | None]]:
        """In a worker thread: sizes, and the bytes and sha256 of files not hashed yet (sidecars and run
        files are small; results are hashed already and read batch by batch)."""
        done: list[tuple[Outgoing, str | None]] = []
        for item in items:
            try:
                if item.data is not None:
                    sha = item.sha256 or hashlib.sha256(item.data).hexdigest()
                    done.append((replace(item, sha256=sha, size=len(item.data)), None))
                elif item.sha256 is None:
                    data = self._path(item).read_bytes()
                    sha = hashlib.sha256(data).hexdigest()
                    done.append((replace(item, data=data, sha256=sha, size=len(data)), None))
                else:
                    done.append((replace(item, size=self._path(item).stat().st_size), None))
            except (OSError, UnsafePathError) as exc:
                done.append((item, f"cannot read {item.local}: {getattr(exc, 'strerror', None) or exc}"))
        return done

    def _path(self, item: Outgoing) -> Path:
        return ensure_inside(self.run_dir, item.local)

    def _load(self, batch: Batch) -> tuple[list[tuple[Outgoing, bytes]], list[tuple[Outgoing, str]]]:
        """In a worker thread: the batch's bytes, each result checked against its journaled sha256."""
        loaded: list[tuple[Outgoing, bytes]] = []
        refused: list[tuple[Outgoing, str]] = []
        for item in batch.items:
            try:
                data = item.data if item.data is not None else self._path(item).read_bytes()
            except (OSError, UnsafePathError) as exc:
                refused.append((item, f"cannot read {item.local}: {getattr(exc, 'strerror', None) or exc}"))
                continue
            if hashlib.sha256(data).hexdigest() != item.sha256:
                refused.append((item, f"{item.local} changed on disk since it was verified: not sent"))
                continue
            loaded.append((item, data))
        return loaded, refused

    # -- one batch -----------------------------------------------------------------------------

    async def _send_batch(self, batch: Batch) -> None:
        loaded, refused = await asyncio.to_thread(self._load, batch)
        for item, why in refused:
            self._fail([item], why)
        if loaded:
            items = tuple(item for item, _ in loaded)
            await self._upload(Batch(batch.directory, items), {i.repo_path: data for i, data in loaded})

    async def _upload(self, batch: Batch, data: dict[str, bytes]) -> None:
        """Send one batch until it lands, is refused, or the repository is given up on."""
        pairs = [(item.repo_path, str(item.sha256)) for item in batch.items]
        files = [(item.name, data[item.repo_path]) for item in batch.items]
        attempt = 0
        while True:
            token = secrets.token_hex(6)
            message = commit_message(self.campaign, batch, token, self.jobs_done())
            self.ledger.sending(pairs, token, self.head)  # committed before the request is sent
            try:
                commit_id = await self.api.put_files(
                    batch.directory, files, message, timeout_s=upload_timeout_s(batch.size, self.request_s)
                )
            except ApiError as exc:
                attempt, next_step = await self._after_error(exc, attempt, token, batch, data)
                if next_step is Next.AGAIN:
                    continue
                if next_step is Next.SETTLED:
                    return
                commit_id = next_step
            self._landed(batch, pairs, commit_id)
            return

    async def _after_error(
        self, error: ApiError, attempt: int, token: str, batch: Batch, data: dict[str, bytes]
    ) -> tuple[int, Next | str]:
        """What a failed upload means: send it AGAIN (surely not made), its commit id (found made), or
        SETTLED (refused, given up, or cannot tell: journaled so)."""
        pairs = [(item.repo_path, str(item.sha256)) for item in batch.items]
        verdict = decide(error, attempt=attempt + 1, policy=self.policy, rng=self._rng, idempotent=False)
        attempt += verdict.costs_attempt
        if verdict.action is Action.RETRY:  # a 429, or nothing was sent: surely not made
            self.ledger.unsent(pairs)
            await self._sleep(verdict.delay_s if verdict.costs_attempt else 0.0)
            return attempt, Next.AGAIN
        if verdict.action is Action.GIVE_UP:
            self.ledger.unsent(pairs)
            self._give_up(batch, error)
            return attempt, Next.SETTLED
        if verdict.action is not Action.LOOK_FIRST:
            await self._refused(batch, data, error)
            return attempt, Next.SETTLED
        log.info("an upload to %s may or may not have been made (%s): looking", batch.directory, error)
        try:
            commit_id = await self._look(token, pairs, settle_at=time.time() + 2 * self.request_s)
        except ApiError as look_error:  # left `sending`: the next run looks again before sending
            self._stop(f"cannot tell whether an upload was made ({look_error})")
            return attempt, Next.SETTLED
        if commit_id is not None:
            return attempt, commit_id
        self.ledger.unsent(pairs)
        if attempt >= self.policy.request_attempts:
            self._give_up(batch, error)
            return attempt, Next.SETTLED
        await self._sleep(backoff(attempt, self.policy, self._rng))
        return attempt, Next.AGAIN

    async def _look(self, token: str, pairs: list[tuple[str, str]], *, settle_at: float) -> str | None:
        """The commit of a request whose answer was lost, or None when it surely was not made: looked for
        at once (a cut answer: the server is done) and, if not found, again once a server still working
        on it would have finished."""
        for look in range(2):
            if look:
                await self._sleep(max(0.0, settle_at - time.time()))
            found = await find_tokens(self.api, {token}, [self.head])
            if token in found.commits:
                return found.commits[token]
            if not found.complete:
                commit_id = await files_on_branch(self.api, pairs)
                if commit_id is not None:
                    return commit_id
        return None

    # -- outcomes ------------------------------------------------------------------------------

    def _landed(self, batch: Batch, pairs: list[tuple[str, str]], commit_id: str) -> None:
        self.ledger.delivered(pairs, commit_id)
        self.head = commit_id
        self.tally.files_sent += len(pairs)
        self.tally.commits += 1
        self._mark_delivered(batch.items)
        done, wanted = self.progress()
        log.info(
            "delivered %d file(s) to %s in commit %s (%d/%d)",
            len(pairs),
            batch.directory,
            commit_id[:12],
            done,
            wanted,
        )

    def _mark_delivered(self, items: Iterable[Outgoing]) -> None:
        for item in items:
            self.tally.wanted[item.repo_path] = item.sha256
            self.tally.delivered.add(item.repo_path)
            self.tally.failed.pop(item.repo_path, None)
        self.on_change()

    def _fail(self, items: Iterable[Outgoing], why: str, *, journal: bool = True) -> None:
        chosen = list(items)
        if journal:
            self.ledger.failed([(i.repo_path, str(i.sha256)) for i in chosen], why)
        for item in chosen:
            self.tally.failed[item.repo_path] = why
        log.warning("not delivered: %s: %s", ", ".join(i.local for i in chosen[:3]), why)
        self.on_change()

    async def _refused(self, batch: Batch, data: dict[str, bytes], error: ApiError) -> None:
        """A refusal that may be about one file is narrowed down by halves; one of the repository
        itself (no key, no access, no repository) stops the delivery."""
        status = error.status if isinstance(error, ApiStatusError) else None
        if status in _SPLIT_STATUSES and len(batch.items) > 1:
            for half in batch.halves():
                if self.stopped is None:
                    await self._upload(half, data)
            return
        self._fail(batch.items, f"refused by the repository: {error}")
        if status is None or status in _TARGET_STATUSES:
            self._stop(f"the repository refused an upload ({error})")

    def _give_up(self, batch: Batch, error: ApiError) -> None:
        self._fail(batch.items, f"the repository kept failing: {error}")
        self._stop(f"the repository kept failing ({error})")

    def _stop(self, why: str) -> None:
        if self.stopped is None:
            self.stopped = why
            log.error("delivery stopped for this run: %s; `batchgen deliver` sends what is missing", why)

    async def resolve_earlier(self) -> None:
        """Requests a killed process sent without hearing their answer: delivered or not, from the branch."""
        rows = [row for row in self.ledger.rows().values() if row.state == SENDING]
        if not rows:
            return
        tokens = {str(row.token) for row in rows}
        settle_at = max(row.sent_at or 0.0 for row in rows) + 2 * self.request_s
        try:
            found = await find_tokens(self.api, tokens, {row.head for row in rows})
            if found.complete and found.commits.keys() < tokens and time.time() < settle_at:
                await self._sleep(settle_at - time.time())
                found = await find_tokens(self.api, tokens, {row.head for row in rows})
            for token in tokens:
                group = [(row.path, row.sha256) for row in rows if row.token == token]
                commit_id = found.commits.get(token)
                if commit_id is None and not found.complete:
                    commit_id = await files_on_branch(self.api, group)
                if commit_id is not None:
                    self.ledger.delivered(group, commit_id)
                else:
                    self.ledger.unsent(group)
        except ApiError as exc:
            self._stop(f"cannot tell whether earlier uploads were made ({exc})")
            return
        log.info("resolved %d file(s) of %d earlier upload(s) from the branch", len(rows), len(tokens))
