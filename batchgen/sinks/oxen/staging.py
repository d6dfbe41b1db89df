"""Staging a commit's files into its workspace: small files a few per request as `file` parts, each
file over LARGE_FILE_BYTES through the chunked version upload (create, chunks, complete), as Oxen's
own client stages them. Every request here may be sent again (staging a path is an upsert, a chunk
already stored is kept) except `complete`, which is sent once and, after a failure, checked against
what the workspace has staged. A file the repository refuses is refused alone, never its batch; a
proxy's 413 sends files one at a time, then through the chunked upload in smaller chunks; a hub that
does not serve the chunked upload gets a large file as one part streamed from disk.
"""

from __future__ import annotations

import asyncio
import logging
import math
import posixpath
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from batchgen.client.repos import Part, RepoApi, is_workspace_gone
from batchgen.errors import ApiError, ApiStatusError, NotFound
from batchgen.sinks.oxen.batching import (
    LARGE_FILE_BYTES,
    Outgoing,
    Stage,
    plan_stages,
    split_for_url,
    upload_timeout_s,
)
from batchgen.sinks.oxen.local_files import Hashed, Unreadable, hash_checked, read_checked

log = logging.getLogger(__name__)
T = TypeVar("T")

MIN_CHUNK_BYTES = 256 * 1024  # a proxy that refuses even this is refused back
TARGET_STATUSES = frozenset({401, 403, 404})  # refusals of the repository itself


class WorkspaceGone(Exception):
    """The workspace disappeared before its commit (deleted by someone): stage again."""


class RepositoryRefused(Exception):
    """The repository refused the delivery itself (no access, no branch): stop sending."""


class Stager:
    """Stages files into workspaces of one repository, reading them from `run_dir`."""

    def __init__(self, api: RepoApi, run_dir: Path) -> None:
        self.api, self.run_dir, self.request_s = api, run_dir, api.client.timeouts.request_s

    async def stage(self, ws: str, items: Sequence[Outgoing]) -> dict[str, str]:
        """Stage every file; the ones refused, with why (a file is refused alone, never its batch)."""
        stages, large = plan_stages(items)
        refused: dict[str, str] = {}
        for stage in stages:
            refused.update(await self._stage_small(ws, stage))
        for item in large:
            refused.update(await self._stage_large(ws, item))
        return refused

    async def _stage_small(self, ws: str, stage: Stage) -> dict[str, str]:
        refused: dict[str, str] = {}
        parts: list[Part] = []
        for item in stage.items:
            try:
                data = await asyncio.to_thread(read_checked, self.run_dir, item)
            except Unreadable as exc:
                refused[item.repo_path] = str(exc)
                continue
            parts.append(Part(stage.filename(item), data))
        if not parts:
            return refused
        kept = [i for i in stage.items if i.repo_path not in refused]
        size = sum(len(p.data) for p in parts)
        try:
            taken = await self.with_retries(
                lambda: self.api.stage(
                    ws, stage.directory, parts, timeout_s=upload_timeout_s(size, self.request_s)
                ),
                what=f"staging {len(parts)} file(s)",
            )
        except ApiStatusError as exc:
            if exc.status == 413 or (exc.status == 400 and len(parts) > 1):
                # a proxy's body cap, or a refusal that may be about one file: one at a time, and a
                # file a proxy will not take whole goes through the chunked upload
                for item in kept:
                    alone = Stage(stage.directory, (item,))
                    refused.update(
                        await (
                            self._stage_large(ws, item) if len(kept) == 1 else self._stage_small(ws, alone)
                        )
                    )
                return refused
            if exc.status == 400:
                refused[kept[0].repo_path] = f"refused by the repository: {exc.detail}"
                return refused
            raise
        for item in kept:
            if item.repo_path not in taken:
                refused[item.repo_path] = "the repository did not take it (its answer does not list it)"
        return refused

    async def _stage_large(self, ws: str, item: Outgoing) -> dict[str, str]:
        """One file through the chunked version upload (create, chunks, complete), as Oxen's own
        client sends every file over 10 MiB; a server that does not serve those routes gets it as one
        streamed part."""
        try:
            return await self._stage_version(ws, item)
        except OSError as exc:  # the file went away or broke while it was read (never a network error)
            return {item.repo_path: f"cannot read {item.local}: {exc.strerror or exc}"}

    async def _stage_version(self, ws: str, item: Outgoing) -> dict[str, str]:
        try:
            hashed = await asyncio.to_thread(hash_checked, self.run_dir, item)
        except Unreadable as exc:
            return {item.repo_path: str(exc)}
        dst_dir, name = posixpath.split(item.repo_path)
        try:
            await self.api.client.with_retries(
                lambda: self.api.version_create(hashed.version, name, hashed.size, dst_dir),
                what=f"announcing {name}",
            )
        except ApiStatusError as exc:
            if exc.status in (404, 405):  # not served here (the hub's proxy may not route it)
                log.info("the repository does not serve the chunked upload (%s): %s as one part", exc, name)
                return await self._stage_streamed(ws, item, hashed)
            if exc.status in TARGET_STATUSES:
                raise RepositoryRefused(f"the repository refused announcing {name} ({exc})") from exc
            raise
        why: str | None = None
        for _ in range(2):  # once more after a lost or failed complete whose file is not staged
            count = await self._send_chunks(hashed, name)
            why = await self._complete(ws, item, hashed, (dst_dir, name), count)
            if why is None:
                return {}
            if why.startswith("refused") and "chunks" not in why:
                return {item.repo_path: why}  # about the file itself (its path): whole cannot help
        # The server keeps the first chunk stored at each offset until a complete succeeds: chunks an
        # earlier run left at another chunk size (a proxy's cap came or went) never assemble into
        # this version. The files route takes it whole, streamed.
        log.info("%s did not assemble from its chunks (%s): sending it as one part", name, why)
        whole = await self._stage_streamed(ws, item, hashed)
        if whole:  # e.g. a proxy that takes neither: said with both reasons, for the person
            return {item.repo_path: f"{why}; and sent whole: {whole[item.repo_path]}"}
        return {}

    async def _send_chunks(self, hashed: Hashed, name: str) -> int:
        """Every chunk of the file (the server keeps one it has already); their count."""
        chunk = LARGE_FILE_BYTES
        while True:
            count = max(1, math.ceil(hashed.size / chunk))
            try:
                for index in range(count):
                    offset = index * chunk
                    length = min(chunk, hashed.size - offset)
                    await self.with_retries(
                        lambda o=offset, n=length: self.api.version_chunk(  # type: ignore[misc]
                            hashed.version, hashed.path, o, n, timeout_s=upload_timeout_s(n, self.request_s)
                        ),
                        what=f"a chunk of {name}",
                    )
                return count
            except ApiStatusError as exc:
                if exc.status != 413 or chunk // 2 < MIN_CHUNK_BYTES:
                    raise
                chunk //= 2  # a proxy caps request bodies below Oxen's chunk size
                log.info("the repository refused a %d-byte chunk (413): chunks of %d bytes", chunk * 2, chunk)

    async def _complete(
        self, ws: str, item: Outgoing, hashed: Hashed, where: tuple[str, str], count: int
    ) -> str | None:
        """One complete (sent once: a second after a success is a 500 upstream); None when the file is
        staged, else why not."""
        dst_dir, name = where
        try:
            await self.api.version_complete(hashed.version, name, dst_dir, count, ws)
            return None
        except ApiStatusError as exc:
            if is_workspace_gone(exc):
                raise WorkspaceGone() from exc
            if isinstance(exc, NotFound):
                raise
            if exc.status == 400:
                return f"refused by the repository: {exc.detail}"
            failure: ApiError = exc
        except ApiError as exc:
            failure = exc
        # A lost answer, or a 500 (the version did not match its hash, or a second complete): staged?
        staged = await self.api.staged(ws)
        if staged is None:
            raise WorkspaceGone()
        if item.repo_path in staged:
            return None
        return f"the repository did not stage it ({failure})"

    async def _stage_streamed(self, ws: str, item: Outgoing, hashed: Hashed) -> dict[str, str]:
        directory, filename = split_for_url(item.repo_path)
        try:
            taken = await self.with_retries(
                lambda: self.api.stage_file(
                    ws,
                    directory,
                    filename,
                    hashed.path,
                    timeout_s=upload_timeout_s(hashed.size, self.request_s),
                ),
                what=f"staging {filename}",
            )
        except ApiStatusError as exc:
            if exc.status in (400, 413):
                return {item.repo_path: f"refused by the repository: {exc.detail}"}
            raise
        return {} if item.repo_path in taken else {item.repo_path: "the repository did not take it"}

    async def with_retries(self, call: Callable[[], Awaitable[T]], *, what: str) -> T:
        """A call that may be sent again, tried again on transient failures (`OxenClient.with_retries`);
        a vanished workspace is WorkspaceGone, a refusal of the repository itself RepositoryRefused."""
        try:
            return await self.api.client.with_retries(call, what=what)
        except ApiStatusError as exc:
            if is_workspace_gone(exc):
                raise WorkspaceGone() from exc
            if exc.status in TARGET_STATUSES:
                raise RepositoryRefused(f"the repository refused {what} ({exc})") from exc
            raise
