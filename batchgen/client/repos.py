"""The repository endpoints delivery reads (docs/oxen-repositories.md), over an OxenClient: the check
before paid work, the branch head, its history, one file's bytes. Writes go through a workspace
(`client.workspaces`).

Reads are retried on transient failures (`OxenClient.with_retries`, `retry.retryable`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from batchgen.client.api import OxenClient, mapped_errors
from batchgen.errors import ApiStatusError, NotFound, Unauthenticated, UsageError
from batchgen.target import DeliveryTarget

log = logging.getLogger(__name__)

HISTORY_PAGE_SIZE = 100  # the server's default page


@dataclass(frozen=True, slots=True)
class Commit:
    id: str
    message: str


@dataclass(frozen=True, slots=True)
class HistoryPage:
    commits: tuple[Commit, ...]  # newest first
    last: bool  # no page after this one


class RepoApi:
    """One delivery target's repository, through `client` (its key goes to the API's origin only)."""

    def __init__(self, client: OxenClient, target: DeliveryTarget) -> None:
        self.client = client
        self.target = target
        self.repo_path = "/api/repos/" + "/".join(quote(p, safe="") for p in (target.namespace, target.repo))
        # A branch name may hold '/' (review/client-a); the server's routes take it as it is, and keep
        # an encoded %2F literally.
        self.branch_in_url = quote(target.branch, safe="/")

    async def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return await self.client.with_retries(
            lambda: self.client.request("GET", path, params=params), what=f"GET {path}"
        )

    # -- the check before paid work ------------------------------------------------------------

    async def check(self, *, write_probe: bool = True) -> str | None:
        """The branch's head commit (None: the repository is empty, its first upload makes the branch).
        A repository that is missing, a branch that is missing, or a key that cannot write raise
        UsageError; with `create`, a missing repository is created first (409: it exists, fine)."""
        target, where = self.target, f"{self.target.namespace}/{self.target.repo}"
        try:
            if target.create:
                created = await self.client.create_repo(target.namespace, target.repo, "batchgen deliveries")
                said = "created" if created else "already exists"
                log.log(
                    logging.WARNING if created else logging.INFO, "delivery repository %s: %s", where, said
                )
            repository = await self._get(self.repo_path)
        except NotFound:
            raise UsageError(_missing_repository(target)) from None
        except (Unauthenticated, ApiStatusError) as exc:
            if exc.status in (401, 403):
                raise UsageError(
                    f"the delivery repository {where} cannot be used with this key: {exc}"
                ) from None
            raise
        head = await self.head()
        details = repository.get("repository") if isinstance(repository, Mapping) else None
        empty = isinstance(details, Mapping) and details.get("is_empty") is True
        if head is None and not empty:
            raise UsageError(
                f"the delivery repository {where} has no branch {target.branch!r}: create it on "
                f"https://oxen.ai/{where}, or deliver to an existing branch (deliver.branch, or "
                f"--deliver {where}@BRANCH)"
            )
        if write_probe:
            await self._probe_write(head)
        return head

    async def _probe_write(self, head: str | None) -> None:
        """No endpoint tells what a key may do; creating the branch that exists is a write that changes
        nothing (an existing name is returned unchanged), and is refused to a key that cannot write."""
        body = {"new_name": self.target.branch, "from_name": self.target.branch}
        try:
            await self.client.with_retries(
                lambda: self.client.request("POST", f"{self.repo_path}/branches", json_body=body),
                what=f"POST {self.repo_path}/branches",
            )
        except (Unauthenticated, ApiStatusError) as exc:
            where = f"{self.target.namespace}/{self.target.repo}"
            if exc.status in (401, 403):
                raise UsageError(
                    f"the key cannot write to the delivery repository {where} (HTTP {exc.status}: "
                    f"{exc.detail}): ask its owner for write access, or deliver elsewhere"
                ) from None
            if exc.status >= 500:
                raise
            if not (exc.status == 404 and head is None):  # an empty repository has no branch to name
                log.warning("could not check write access to %s (%s); the first upload will tell", where, exc)

    # -- reading the branch --------------------------------------------------------------------

    async def head(self) -> str | None:
        """The branch's head commit id; None when the branch does not exist (yet)."""
        try:
            answer = await self._get(f"{self.repo_path}/branches/{self.branch_in_url}")
        except NotFound:
            return None
        branch = answer.get("branch") if isinstance(answer, Mapping) else None
        commit_id = branch.get("commit_id") if isinstance(branch, Mapping) else None
        if not isinstance(commit_id, str):
            raise ApiStatusError(200, "GET", f"{self.repo_path}/branches", "the branch has no commit_id")
        return commit_id

    async def history(self, page: int) -> HistoryPage:
        """One page of the branch's commits, newest first (an empty repository: none)."""
        path = f"{self.repo_path}/commits/history/{self.branch_in_url}"
        params = {"page": str(page), "page_size": str(HISTORY_PAGE_SIZE)}
        try:
            answer = await self._get(path, params)
        except NotFound:
            return HistoryPage((), True)
        raw = answer.get("commits") if isinstance(answer, Mapping) else None
        if not isinstance(raw, list):
            raise ApiStatusError(200, "GET", path, "the history has no list of commits")
        commits = tuple(
            Commit(str(c["id"]), str(c.get("message", "")))
            for c in raw
            if isinstance(c, Mapping) and isinstance(c.get("id"), str)
        )
        total = answer.get("total_pages")
        last = not commits or (isinstance(total, int) and page >= total)
        return HistoryPage(commits, last)

    async def last_commit_of(self, path: str) -> str | None:
        """The newest commit that changed `path` on the branch."""
        answer = await self._get(
            f"{self.repo_path}/commits/history/{self.branch_in_url}/{quote(path)}", {"page_size": "1"}
        )
        commits = answer.get("commits") if isinstance(answer, Mapping) else None
        if isinstance(commits, list) and commits and isinstance(commits[0], Mapping):
            return str(commits[0].get("id")) if commits[0].get("id") else None
        return None

    async def file_sha256(self, path: str) -> str | None:
        """The sha256 of the file at `path` on the branch (None: not there). Oxen's own hashes are not
        SHA-256, so the bytes are read and hashed."""
        url = self.client.file_url(self.target.namespace, self.target.repo, self.target.branch, path)

        async def read() -> str | None:
            digest = hashlib.sha256()
            with mapped_errors("GET", path):
                async with self.client.session.get(url, headers=self.client.auth_for(url)) as resp:
                    if resp.status == 404:
                        return None
                    if resp.status >= 400:
                        raise ApiStatusError(resp.status, "GET", path, f"HTTP {resp.status}")
                    async for chunk in resp.content.iter_chunked(1 << 20):
                        digest.update(chunk)
            return digest.hexdigest()

        return await self.client.with_retries(read, what=f"GET file {path}")


def _missing_repository(target: DeliveryTarget) -> str:
    where = f"{target.namespace}/{target.repo}"
    return (
        f"the delivery repository {where} does not exist, or the key cannot see it: create it "
        f"(https://oxen.ai/new), or add `create: true` under `deliver:` to let batchgen create it"
    )
