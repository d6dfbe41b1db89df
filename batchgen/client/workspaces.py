"""The workspace routes Oxen's own clients use to put many large files into a branch as one commit
(docs/oxen-repositories.md, "Workspaces"): create or get a workspace on the branch, stage files into
it (`file` parts of a multipart POST; a large file through the chunked version upload), then commit
it onto the branch's current head. Each call is one request; which of them may be sent again is
said per method; reads retry by themselves, writes are one request each, and the caller
(`sinks.oxen.commit_once`) decides what follows a failure or a lost answer.

Part filenames are sent as raw UTF-8 (`quote_fields=False`): the server never percent-decodes them,
so aiohttp's default escaping would store `hero%20(red).mp4` for `hero (red).mp4`.
"""

from __future__ import annotations

import asyncio
import io
import mimetypes
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import aiohttp

from batchgen.client.api import AUTHOR
from batchgen.client.repos import RepoApi
from batchgen.errors import ApiStatusError, NotFound

READ_PIECE = 1 << 20  # bytes read from disk at a time while a chunk is sent


@dataclass(frozen=True, slots=True)
class Part:
    """One file of a staging request: its filename under the request's directory, and its bytes."""

    filename: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Workspace:
    id: str
    base_commit: str | None


def is_no_changes(error: ApiStatusError) -> bool:
    """Oxen's two "nothing to commit" answers: `PUT …/file`'s 422 `no_changes` and a workspace
    commit's 422 `NoChanges` (the bytes are on the branch already)."""
    squeezed = error.detail.lower().replace(" ", "").replace("_", "")
    return error.status == 422 and "nochanges" in squeezed


def is_workspace_gone(error: ApiStatusError) -> bool:
    """A 404 about the workspace itself (upstream's `status_description`: "Workspace not found: X"),
    as opposed to one about the repository or the branch."""
    return isinstance(error, NotFound) and "workspace" in error.detail.lower()


class WorkspaceApi:
    """The workspace and version routes of one delivery target's repository."""

    def __init__(self, repo: RepoApi) -> None:
        self.repo = repo
        self.client = repo.client
        self._base = repo.repo_path

    def _ws(self, workspace_id: str) -> str:
        return f"{self._base}/workspaces/{quote(workspace_id, safe='')}"

    async def create(self, workspace_id: str) -> Workspace:
        """Get or create the workspace `workspace_id` on the target's branch (may be sent again: an
        existing id is returned as it is). In an empty repository this makes the branch."""
        body = {"workspace_id": workspace_id, "branch_name": self.repo.target.branch}
        answer = await self.client.request("PUT", f"{self._base}/workspaces", json_body=body)
        return _workspace(answer, workspace_id)

    async def get(self, workspace_id: str) -> Workspace | None:
        """The workspace, or None when there is none of that id (never created, committed, deleted)."""
        path = self._ws(workspace_id)
        try:
            answer = await self.client.with_retries(
                lambda: self.client.request("GET", path), what=f"GET {path}"
            )
        except NotFound:
            return None
        return _workspace(answer, workspace_id)

    async def staged(self, workspace_id: str) -> set[str] | None:
        """The repository paths staged in the workspace (added or modified), None when it is gone."""
        path, page = f"{self._ws(workspace_id)}/changes", 1
        found: set[str] = set()
        while True:
            params = {"page": str(page), "page_size": "1000"}
            try:
                answer = await self.client.with_retries(
                    lambda p=params: self.client.request("GET", path, params=p),  # type: ignore[misc]
                    what=f"GET {path}",
                )
            except NotFound:
                return None
            more = _staged_paths(answer, found)
            if not more:
                return found
            page += 1

    async def stage(
        self, workspace_id: str, directory: str, parts: Sequence[Part], *, timeout_s: float
    ) -> set[str]:
        """One POST of `parts` into `directory` of the workspace (may be sent again: staging a path
        is an upsert); the repository paths the server says it took."""
        form = aiohttp.FormData(quote_fields=False)
        for part in parts:
            # a BytesIO, not bytes: aiohttp writes it a piece at a time instead of in one call
            form.add_field(
                "file", io.BytesIO(part.data), filename=part.filename, content_type=_kind(part.filename)
            )
        return await self._post_files(workspace_id, directory, form, timeout_s)

    async def stage_file(
        self, workspace_id: str, directory: str, filename: str, source: Path, *, timeout_s: float
    ) -> set[str]:
        """One POST of one file streamed from disk (a server without the chunked upload gets a large
        file this way; may be sent again)."""
        with source.open("rb") as handle:
            form = aiohttp.FormData(quote_fields=False)
            form.add_field("file", handle, filename=filename, content_type=_kind(filename))
            return await self._post_files(workspace_id, directory, form, timeout_s)

    async def _post_files(
        self, workspace_id: str, directory: str, form: aiohttp.FormData, timeout_s: float
    ) -> set[str]:
        path = f"{self._ws(workspace_id)}/files/{quote(directory, safe='/')}"
        timeout = aiohttp.ClientTimeout(total=timeout_s, connect=self.client.timeouts.connect_s)
        answer = await self.client.request("POST", path, data=form, client_timeout=timeout)
        paths = answer.get("paths") if isinstance(answer, Mapping) else None
        return {str(p).strip("/") for p in paths} if isinstance(paths, list) else set()

    async def commit(self, workspace_id: str, message: str) -> str:
        """Commit everything staged onto the branch's current head; the commit id. Sent once: what
        follows a lost answer is the caller's decision."""
        body = {"message": message, "author": AUTHOR["name"], "email": AUTHOR["email"]}
        path = f"{self._ws(workspace_id)}/merge/{self.repo.branch_in_url}"
        answer = await self.client.request("POST", path, json_body=body)
        commit = answer.get("commit") if isinstance(answer, Mapping) else None
        commit_id = commit.get("id") if isinstance(commit, Mapping) else None
        if not isinstance(commit_id, str) or not commit_id:
            raise ApiStatusError(200, "POST", path, "the answer names no commit")
        return commit_id

    async def delete(self, workspace_id: str) -> bool:
        """Remove one workspace (may be sent again); False when it was not there."""
        path = self._ws(workspace_id)
        try:
            await self.client.with_retries(lambda: self.client.request("DELETE", path), what=f"DELETE {path}")
        except NotFound:
            return False
        return True

    # -- the chunked version upload (files over the staging size) -------------------------------

    def _version(self, version: str) -> str:
        return f"{self._base}/versions/{quote(version, safe='')}"

    async def version_create(self, version: str, file_name: str, size: int, dst_dir: str) -> None:
        """Announce a version upload (a no-op upstream; may be sent again)."""
        body = {"hash": version, "file_name": file_name, "size": size, "dst_dir": dst_dir}
        await self.client.request("POST", f"{self._version(version)}/create", json_body=body)

    async def version_chunk(
        self,
        version: str,
        source: Path,
        offset: int,
        length: int,
        *,
        timeout_s: float,
    ) -> None:
        """One chunk, streamed from `source` (a chunk already stored at `offset` is kept by the server,
        so this may be sent again)."""
        path = f"{self._version(version)}/chunks"
        timeout = aiohttp.ClientTimeout(total=timeout_s, connect=self.client.timeouts.connect_s)
        headers = {"Content-Length": str(length), "Content-Type": "application/octet-stream"}
        handle = await asyncio.to_thread(source.open, "rb")
        try:  # closed here, not by the generator: a cut request leaves the generator unfinished
            await asyncio.to_thread(handle.seek, offset)
            await self.client.request(
                "PUT",
                path,
                params={"offset": str(offset)},
                data=_pieces(handle, length, source),
                headers=headers,
                client_timeout=timeout,
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


def _kind(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _workspace(answer: Any, asked: str) -> Workspace:
    workspace = answer.get("workspace") if isinstance(answer, Mapping) else None
    commit = workspace.get("commit") if isinstance(workspace, Mapping) else None
    base = commit.get("id") if isinstance(commit, Mapping) else None
    return Workspace(asked, base if isinstance(base, str) else None)


def _staged_paths(answer: Any, into: set[str]) -> bool:
    """Add the added and modified files of one `changes` page to `into`; True when a next page exists."""
    staged = answer.get("staged") if isinstance(answer, Mapping) else None
    more = False
    for kind in ("added_files", "modified_files"):
        listing = staged.get(kind) if isinstance(staged, Mapping) else None
        entries = listing.get("entries") if isinstance(listing, Mapping) else listing
        for entry in entries if isinstance(entries, list) else ():
            name = _entry_path(entry)
            if name:
                into.add(name)
        if isinstance(listing, Mapping):
            page, total = listing.get("page_number"), listing.get("total_pages")
            more = more or (isinstance(page, int) and isinstance(total, int) and page < total)
    return more


def _entry_path(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry.strip("/")
    if isinstance(entry, Mapping):
        for key in ("path", "filename"):
            value = entry.get(key)
            if isinstance(value, str) and value:
                return value.strip("/")
    return None
