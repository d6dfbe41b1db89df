"""One Oxen repository's branch, over an OxenClient (docs/oxen-repositories.md): the check before paid
work, the branch head, its history, one file's bytes; and the writes, through the workspace routes
Oxen's own clients use to put many large files into a branch as one commit ("Workspaces"): create or
get a workspace on the branch, stage files into it (`file` parts of a multipart POST; a large file
through the chunked version upload), then commit it onto the branch's current head.

Each call is one request. Reads retry by themselves (`OxenClient.retried`); a write is one request,
whether it may be sent again is said per method, and the caller (`sinks.oxen.commit_once`) decides
what follows a failure or a lost answer.

Part filenames are sent as raw UTF-8 (`quote_fields=False`): the server never percent-decodes them,
so aiohttp's default escaping would store `hero%20(red).mp4` for `hero (red).mp4`.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import mimetypes
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

import aiohttp

from batchgen.client.api import AUTHOR, OxenClient, field_of, mapped_errors, repo_path
from batchgen.errors import ApiStatusError, NotFound, Unauthenticated, UsageError
from batchgen.target import DeliveryTarget

log = logging.getLogger(__name__)

HISTORY_PAGE_SIZE = 100  # the server's default page
READ_PIECE = 1 << 20  # bytes read from disk at a time while a chunk is sent


@dataclass(frozen=True, slots=True)
class Commit:
    id: str
    message: str


@dataclass(frozen=True, slots=True)
class HistoryPage:
    commits: tuple[Commit, ...]  # newest first
    last: bool  # no page after this one


@dataclass(frozen=True, slots=True)
class Part:
    """One file of a staging request: its filename under the request's directory, and its bytes."""

    filename: str
    data: bytes


def is_no_changes(error: ApiStatusError) -> bool:
    """Oxen's two "nothing to commit" answers: `PUT …/file`'s 422 `no_changes` and a workspace
    commit's 422 `NoChanges` (the bytes are on the branch already)."""
    squeezed = error.detail.lower().replace(" ", "").replace("_", "")
    return error.status == 422 and "nochanges" in squeezed


def is_workspace_gone(error: ApiStatusError) -> bool:
    """A 404 about the workspace itself (upstream's `status_description`: "Workspace not found: X"),
    as opposed to one about the repository or the branch."""
    return isinstance(error, NotFound) and "workspace" in error.detail.lower()


class RepoApi:
    """One target's repository and branch, through `client` (its key goes to the API's origin only)."""

    def __init__(self, client: OxenClient, target: DeliveryTarget) -> None:
        self.client = client
        self.target = target
        self.repo_path = repo_path(target.namespace, target.repo)
        # A branch name may hold '/' (review/client-a); the server's routes take it as it is, and keep
        # an encoded %2F literally.
        self.branch_in_url = quote(target.branch, safe="/")

    # -- the check before paid work ------------------------------------------------------------

    async def check(self, *, write_probe: bool = True) -> str | None:
        """The branch's head commit (None: the repository is empty, its first upload makes the branch).
        A repository that is missing, a branch that is missing, or a key that cannot write raise
        UsageError; with `create`, a missing repository is created first (409: it exists, fine)."""
        target, where = self.target, f"{self.target.namespace}/{self.target.repo}"
        try:
            if target.create:
                await self.client.create_repo(
                    target.namespace, target.repo, "batchgen deliveries", kind="delivery", public=False
                )
            repository = await self.client.retried("GET", self.repo_path)
        except NotFound:
            raise UsageError(
                f"the delivery repository {where} does not exist, or the key cannot see it: create it "
                "(https://oxen.ai/new), or add `create: true` under `deliver:` to let batchgen create it"
            ) from None
        except (Unauthenticated, ApiStatusError) as exc:
            if exc.status in (401, 403):
                raise UsageError(
                    f"the delivery repository {where} cannot be used with this key: {exc}"
                ) from None
            raise
        head = await self.head()
        if head is None and field_of(repository, "repository", "is_empty") is not True:
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
            await self.client.retried("POST", f"{self.repo_path}/branches", json_body=body)
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
        answer = await self.client.retried_or_none("GET", f"{self.repo_path}/branches/{self.branch_in_url}")
        if answer is None:
            return None
        commit_id = field_of(answer, "branch", "commit_id")
        if not isinstance(commit_id, str):
            raise ApiStatusError(200, "GET", f"{self.repo_path}/branches", "the branch has no commit_id")
        return commit_id

    async def history(self, page: int) -> HistoryPage:
        """One page of the branch's commits, newest first (an empty repository: none)."""
        path = f"{self.repo_path}/commits/history/{self.branch_in_url}"
        answer = await self.client.retried_or_none(
            "GET", path, {"page": str(page), "page_size": str(HISTORY_PAGE_SIZE)}
        )
        if answer is None:
            return HistoryPage((), True)
        raw = field_of(answer, "commits")
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
        history = f"{self.repo_path}/commits/history/{self.branch_in_url}/{quote(path)}"
        commits = field_of(await self.client.retried("GET", history, params={"page_size": "1"}), "commits")
        if isinstance(commits, list) and commits and isinstance(commits[0], Mapping):
            return str(commits[0].get("id")) if commits[0].get("id") else None
        return None

    def file_url(self, path: str) -> str:
        return self.client.url(f"{self.repo_path}/file/{self.branch_in_url}/{quote(path)}")

    async def file_exists(self, path: str) -> bool:
        """HEAD the file at `path` on the branch (a public repository's needs no key)."""
        url = self.file_url(path)
        await self.client.throttle.wait_clear()
        with mapped_errors("HEAD", urlsplit(url).path):
            async with self.client.session.head(url, headers=self.client.auth_for(url)) as resp:
                return resp.status == 200

    async def status_without_key(self, path: str) -> int:
        """The status a HEAD of the file at `path` gets without the key: what a model fetching a
        reference image sees (a private repository's files answer 404 or 401/403)."""
        url = self.file_url(path)
        await self.client.throttle.wait_clear()
        with mapped_errors("HEAD", urlsplit(url).path):
            async with self.client.session.head(url) as resp:
                return resp.status

    async def file_sha256(self, path: str) -> str | None:
        """The sha256 of the file at `path` on the branch (None: not there). Oxen's own hashes are not
        SHA-256, so the bytes are read and hashed."""
        url = self.file_url(path)

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

    # -- workspaces ----------------------------------------------------------------------------

    def _ws(self, workspace_id: str) -> str:
        return f"{self.repo_path}/workspaces/{quote(workspace_id, safe='')}"

    async def create_workspace(self, workspace_id: str) -> None:
        """Get or create the workspace `workspace_id` on the branch (may be sent again: an existing id
        is taken as it is). In an empty repository this makes the branch."""
        body = {"workspace_id": workspace_id, "branch_name": self.target.branch}
        await self.client.request("PUT", f"{self.repo_path}/workspaces", json_body=body)

    async def has_workspace(self, workspace_id: str) -> bool:
        """False when there is no workspace of that id (never created, committed, deleted)."""
        return await self.client.retried_or_none("GET", self._ws(workspace_id)) is not None

    async def staged(self, workspace_id: str) -> set[str] | None:
        """The repository paths staged in the workspace (added or modified), None when it is gone."""
        path, page = f"{self._ws(workspace_id)}/changes", 1
        found: set[str] = set()
        while True:
            answer = await self.client.retried_or_none("GET", path, {"page": str(page), "page_size": "1000"})
            if answer is None:
                return None
            if not _staged_paths(answer, found):
                return found
            page += 1

    async def stage(
        self, workspace_id: str, directory: str, parts: Sequence[Part], *, timeout_s: float
    ) -> set[str]:
        """One POST of `parts` into `directory` of the workspace (may be sent again: staging a path
        is an upsert); the repository paths the server says it took."""
        # a BytesIO, not bytes: aiohttp writes it a piece at a time instead of in one call
        files = [(part.filename, io.BytesIO(part.data)) for part in parts]
        return await self._post_files(workspace_id, directory, files, timeout_s)

    async def stage_file(
        self, workspace_id: str, directory: str, filename: str, source: Path, *, timeout_s: float
    ) -> set[str]:
        """One POST of one file streamed from disk (a server without the chunked upload gets a large
        file this way; may be sent again)."""
        with source.open("rb") as handle:
            return await self._post_files(workspace_id, directory, [(filename, handle)], timeout_s)

    async def _post_files(
        self, workspace_id: str, directory: str, files: Sequence[tuple[str, BinaryIO]], timeout_s: float
    ) -> set[str]:
        form = aiohttp.FormData(quote_fields=False)  # filenames as raw UTF-8: see the module's docstring
        for filename, handle in files:
            kind = mimetypes.guess_type(filename)[0] or "application/octet-stream"
            form.add_field("file", handle, filename=filename, content_type=kind)
        path = f"{self._ws(workspace_id)}/files/{quote(directory, safe='/')}"
        answer = await self.client.request("POST", path, data=form, client_timeout=self._upload(timeout_s))
        paths = field_of(answer, "paths")
        return {str(p).strip("/") for p in paths} if isinstance(paths, list) else set()

    def _upload(self, timeout_s: float) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=timeout_s, connect=self.client.timeouts.connect_s)

    async def commit(self, workspace_id: str, message: str) -> str:
        """Commit everything staged onto the branch's current head; the commit id. Sent once: what
        follows a lost answer is the caller's decision."""
        body = {"message": message, "author": AUTHOR["name"], "email": AUTHOR["email"]}
        path = f"{self._ws(workspace_id)}/merge/{self.branch_in_url}"
        commit_id = field_of(await self.client.request("POST", path, json_body=body), "commit", "id")
        if not isinstance(commit_id, str) or not commit_id:
            raise ApiStatusError(200, "POST", path, "the answer names no commit")
        return commit_id

    async def delete_workspace(self, workspace_id: str) -> bool:
        """Remove one workspace (may be sent again); False when it was not there."""
        return await self.client.retried_or_none("DELETE", self._ws(workspace_id)) is not None

    # -- the chunked version upload (files over the staging size) -------------------------------

    def _version(self, version: str) -> str:
        return f"{self.repo_path}/versions/{quote(version, safe='')}"

    async def version_create(self, version: str, file_name: str, size: int, dst_dir: str) -> None:
        """Announce a version upload (a no-op upstream; may be sent again)."""
        body = {"hash": version, "file_name": file_name, "size": size, "dst_dir": dst_dir}
        await self.client.request("POST", f"{self._version(version)}/create", json_body=body)

    async def version_chunk(
        self, version: str, source: Path, offset: int, length: int, *, timeout_s: float
    ) -> None:
        """One chunk, streamed from `source` (a chunk already stored at `offset` is kept by the server,
        so this may be sent again)."""
        headers = {"Content-Length": str(length), "Content-Type": "application/octet-stream"}
        handle = await asyncio.to_thread(source.open, "rb")
        try:  # closed here, not by the generator: a cut request leaves the generator unfinished
            await asyncio.to_thread(handle.seek, offset)
            await self.client.request(
                "PUT",
                f"{self._version(version)}/chunks",
                params={"offset": str(offset)},
                data=_pieces(handle, length, source),
                headers=headers,
                client_timeout=self._upload(timeout_s),
            )
        finally:
            await asyncio.to_thread(handle.close)

    async def version_complete(
        self, version: str, file_name: str, dst_dir: str, chunks: int, workspace_id: str
    ) -> None:
        """Assemble the chunks, verify them against `version`, and stage the file at `dst_dir/file_name`
        in the workspace. Sent once: a second complete after a success is a 500 upstream."""
        body = {
            "files": [{"hash": version, "file_name": file_name, "dst_dir": dst_dir, "num_chunks": chunks}],
            "workspace_id": workspace_id,
        }
        await self.client.request("POST", f"{self._version(version)}/complete", json_body=body)


async def _pieces(handle: BinaryIO, length: int, source: Path) -> AsyncIterator[bytes]:
    """`length` bytes from `handle`, a piece at a time (never the whole chunk in memory)."""
    left = length
    while left > 0:
        piece = await asyncio.to_thread(handle.read, min(READ_PIECE, left))
        if not piece:
            raise OSError(f"{source} ended {left} bytes early")
        left -= len(piece)
        yield piece


def _staged_paths(answer: Any, into: set[str]) -> bool:
    """Add the added and modified files of one `changes` page to `into`; True when a next page exists."""
    more = False
    for kind in ("added_files", "modified_files"):
        listing = field_of(answer, "staged", kind)
        entries = listing.get("entries") if isinstance(listing, Mapping) else listing
        for entry in entries if isinstance(entries, list) else ():
            if name := _entry_path(entry):
                into.add(name)
        if isinstance(listing, Mapping):
            page, total = listing.get("page_number"), listing.get("total_pages")
            more = more or (isinstance(page, int) and isinstance(total, int) and page < total)
    return more


def _entry_path(entry: Any) -> str:
    if isinstance(entry, str):
        return entry.strip("/")
    names = (field_of(entry, key) for key in ("path", "filename"))
    return next((name.strip("/") for name in names if isinstance(name, str) and name), "")
