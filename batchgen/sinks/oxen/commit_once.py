"""A batch of files into the branch as one commit, at most once, through a workspace; and what a
killed process left half done.

The protocol, per commit:
1. journal every file `sending` with a fresh random token; the workspace is named after the token
   (`batchgen-<token>`), so it is on disk before it exists;
2. create the workspace on the branch, stage the files (small ones as `file` parts, each large one
   through the chunked version upload), all of which may be sent again (staging is an upsert);
3. commit through the outbox (`journal.outbox`), a lost answer looked for by the token on the
   branch; surely not made and the workspace gone: stage again into a new one. A 422 "no changes"
   means the bytes are on the branch already: each file's sha256 there confirms it. A 409
   "workspace is behind" stages again into a new workspace on the new head.

Every workspace this creates is either committed (the server removes an unnamed one) or deleted; one
whose delete failed is remembered in the journal and deleted by the next process. No other
workspace is ever touched, and never `DELETE …/workspaces` (it removes everyone's).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batchgen.client.repos import RepoApi, is_no_changes, is_workspace_gone
from batchgen.errors import ApiError, ApiStatusError, NotFound
from batchgen.journal.deliveries import SENDING, Delivery, DeliveryLedger
from batchgen.journal.outbox import CannotTell, Found, Outbox
from batchgen.retry import attempts
from batchgen.sinks.oxen.batching import Batch, Outgoing, workspace_id
from batchgen.sinks.oxen.resolve import find_commits
from batchgen.sinks.oxen.staging import RepositoryRefused, Stager, WorkspaceGone

log = logging.getLogger(__name__)


class StageAgain(Exception):
    """The branch moved under a batch, or its workspace vanished: stage what is left on a new one."""


@dataclass(slots=True)
class Outcome:
    """What became of a batch's files."""

    delivered: dict[str, str | None] = field(default_factory=dict)  # path -> commit id (None: was there)
    failed: dict[str, str] = field(default_factory=dict)  # path -> why
    stopped: str | None = None  # why nothing more should be sent in this run
    commit_id: str | None = None  # the commit this process made, if any
    files_sent: int = 0


def _pairs(items: Iterable[Outgoing]) -> list[tuple[str, str]]:
    return [(item.repo_path, str(item.sha256)) for item in items]


class CommitOnce:
    """Commits batches for one target through workspaces, journaling each step in `ledger`."""

    def __init__(self, api: RepoApi, ledger: DeliveryLedger, run_dir: Path) -> None:
        """The request timeout and the retry policy are those of `api`'s client."""
        self.api, self.ledger = api, ledger
        self.stager = Stager(api, run_dir)
        self.policy = api.client.retry_policy
        self.outbox: Outbox[str, str] = Outbox(
            self._look, request_s=api.client.timeouts.request_s, policy=self.policy
        )

    # -- one batch -----------------------------------------------------------------------------

    async def send(self, batch: Batch, head: str | None, message: Callable[[str], str]) -> Outcome:
        """Stage and commit `batch` until it lands, is refused, or the repository is given up on."""
        outcome, items = Outcome(), list(batch.items)
        tries = attempts(
            self.policy,
            limit=self.policy.request_attempts,
            on=lambda error: isinstance(error, StageAgain),
            what="a delivery",
            sleep=asyncio.sleep,
        )
        async for attempt in tries:
            with attempt:
                token = secrets.token_hex(6)
                ws = workspace_id(token)
                self.ledger.sending(_pairs(items), token, head)  # on disk before the workspace exists
                try:
                    await self.stager.with_retries(
                        functools.partial(self.api.create_workspace, ws), what="creating a workspace"
                    )
                    refused = await self.stager.stage(ws, items)
                    self._refuse(outcome, [i for i in items if i.repo_path in refused], refused)
                    items = [i for i in items if i.repo_path not in refused]
                    if not items:
                        await self._discard(ws)
                        break
                    done = await self._commit(ws, token, _pairs(items), message(token), head)
                except WorkspaceGone:
                    done = None
                except CannotTell as exc:  # left `sending`, its workspace kept: the next run looks
                    why = f"cannot tell whether it was committed ({exc}); the next run looks before sending"
                    outcome.failed.update({i.repo_path: why for i in items})
                    outcome.stopped = f"cannot tell whether a commit was made ({exc})"
                    return outcome
                except (RepositoryRefused, ApiError) as exc:  # refused, or the repository kept failing
                    why = (
                        str(exc)
                        if isinstance(exc, RepositoryRefused)
                        else f"the repository kept failing: {exc}"
                    )
                    # The workspace goes before the rows leave `sending`: a kill in between still finds it.
                    await self._discard(ws)
                    self.ledger.unsent(_pairs(items))
                    self._refuse(outcome, items, dict.fromkeys((i.repo_path for i in items), why))
                    outcome.stopped = why
                    return outcome
                if done is not None:
                    outcome.delivered.update(done.delivered)
                    outcome.commit_id = done.commit_id or outcome.commit_id
                    outcome.files_sent += done.files_sent
                    items = [i for i in items if i.repo_path not in done.delivered]
                if items:  # the branch moved, or the workspace vanished: again, on a new workspace
                    raise StageAgain(f"{len(items)} file(s) to stage again")
        if items:
            why = "the branch kept changing under these files, or the workspace kept disappearing"
            self.ledger.unsent(_pairs(items))
            self._refuse(outcome, items, {i.repo_path: why for i in items})
        return outcome

    def _refuse(self, outcome: Outcome, items: Sequence[Outgoing], why: dict[str, str]) -> None:
        for item in items:
            self.ledger.failed([(item.repo_path, str(item.sha256))], why[item.repo_path])
            outcome.failed[item.repo_path] = why[item.repo_path]

    # -- the commit ----------------------------------------------------------------------------

    async def _commit(
        self, ws: str, token: str, pairs: list[tuple[str, str]], message: str, head: str | None
    ) -> Outcome | None:
        """Commit the workspace through the outbox: once, and again only when it surely was not made.
        An Outcome with what landed; None when the batch must be staged again (conflict, workspace
        gone)."""

        async def intend() -> float:
            return self.ledger.sending(pairs, token, head)  # the commit leaves now

        answer = await self.outbox.send(
            token,
            intend,
            functools.partial(self._commit_request, ws, message),
            what=f"a commit of {ws}",
            lost=(NotFound,),  # the workspace gone: the commit may have been made (and removed it)
            again=functools.partial(self.api.has_workspace, ws),
        )
        if isinstance(answer, str):
            return self._landed(pairs, answer)
        if isinstance(answer, Found):
            await self._discard(ws)
            return self._landed(pairs, answer.value)
        if isinstance(answer, ApiStatusError):
            if is_no_changes(answer):
                return await self._already_there(ws, pairs)
            log.info("the branch moved under %s (%s): staging again on its new head", ws, answer.detail)
            await self._discard(ws)
        elif answer is not None and answer.sendable:
            raise answer.error
        self.ledger.unsent(pairs)
        return None

    async def _commit_request(self, ws: str, message: str) -> str | ApiStatusError:
        """The commit request: the commit's id, or an answer that made none (422 no changes; 409, a
        staged file changed on the branch since the workspace began). A refusal of the repository
        itself is RepositoryRefused; other failures are the outbox's to judge."""
        try:
            return await self.api.commit(ws, message)
        except ApiStatusError as exc:
            if is_no_changes(exc) or exc.status == 409:
                return exc
            if exc.status in (400, 403) or (isinstance(exc, NotFound) and not is_workspace_gone(exc)):
                raise RepositoryRefused(f"the repository refused the commit ({exc})") from exc
            raise

    async def _look(self, tokens: list[str]) -> dict[str, str]:
        """One look at the branch for the commits of these tokens (`resolve`), read back to the heads
        journaled with them: token -> commit id, for the ones made."""
        rows = [row for row in self.ledger.rows().values() if row.state == SENDING and row.token in tokens]
        files = {token: [(row.path, row.sha256) for row in rows if row.token == token] for token in tokens}
        return await find_commits(self.api, files, {row.head for row in rows})

    async def _already_there(self, ws: str, pairs: list[tuple[str, str]]) -> Outcome | None:
        """A 422 "no changes": nothing staged differs from the branch. Each file is confirmed by its
        sha256 on the branch; one that is not there is staged again."""
        await self._discard(ws)
        outcome = Outcome()
        missing = []
        for path, sha256 in pairs:
            if await self.api.file_sha256(path) == sha256:
                outcome.delivered[path] = None
            else:
                missing.append((path, sha256))
        self.ledger.delivered([(p, s) for p, s in pairs if p in outcome.delivered], None)
        self.ledger.unsent(missing)
        if outcome.delivered:
            log.info("%d file(s) were on the branch already (no changes to commit)", len(outcome.delivered))
        return outcome if outcome.delivered else None

    def _landed(self, pairs: list[tuple[str, str]], commit_id: str) -> Outcome:
        self.ledger.delivered(pairs, commit_id)
        return Outcome(
            delivered=dict.fromkeys((p for p, _ in pairs), commit_id),
            commit_id=commit_id,
            files_sent=len(pairs),
        )

    async def remove_remembered(self) -> list[str]:
        """Delete the workspaces whose removal failed earlier; the ones still there."""
        for ws in self.ledger.workspaces_to_remove():
            await self._discard(ws)
        return self.ledger.workspaces_to_remove()

    async def _discard(self, ws: str) -> None:
        """Delete a workspace this process made and will not commit; if that fails, the journal keeps
        its id for the next process."""
        try:
            await self.api.delete_workspace(ws)
            self.ledger.forget_workspace(ws)
        except ApiError as exc:
            log.warning("could not remove the workspace %s (%s); the next run removes it", ws, exc)
            self.ledger.remember_workspace(ws)

    # -- what a killed process left ------------------------------------------------------------

    async def resolve_earlier(self, message: Callable[[str, int], str]) -> None:
        """Commits a killed process left `sending`, looked for through the outbox: found on the branch
        (delivered), finished (its workspace committed with what it had staged), or known not made
        (unsent, sent again by the sweep). Workspaces whose removal failed are removed. Raises
        CannotTell, or ApiError when a workspace cannot be read."""
        await self.remove_remembered()
        rows = [row for row in self.ledger.rows().values() if row.state == SENDING]
        sent: dict[str, float] = {}
        for row in rows:
            sent[str(row.token)] = max(sent.get(str(row.token), 0.0), row.sent_at or 0.0)
        found, _ = await self.outbox.look_for(sent)
        for token in sorted(sent):
            group = [row for row in rows if row.token == token]
            await self._resolve_one(token, group, found.get(token), message)
        if rows:
            log.info("resolved %d file(s) of %d earlier commit(s)", len(rows), len(sent))

    async def _resolve_one(
        self, token: str, group: list[Delivery], commit_id: str | None, message: Callable[[str, int], str]
    ) -> None:
        pairs = [(row.path, row.sha256) for row in group]
        ws = workspace_id(token)
        if commit_id is not None:
            self.ledger.delivered(pairs, commit_id)
            await self._discard(ws)
            return
        staged = await self.api.staged(ws)  # None: the workspace is gone
        ours = [(p, s) for p, s in pairs if p in (staged or ())]
        if staged is not None and not ours:
            await self._discard(ws)
        self.ledger.unsent([pair for pair in pairs if pair not in ours])
        if ours:
            log.info("committing %d file(s) a stopped run staged in %s", len(ours), ws)
            await self._commit(ws, token, ours, message(token, len(ours)), group[0].head)
