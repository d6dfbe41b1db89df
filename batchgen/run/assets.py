"""Local reference images made reachable by the model: uploaded once to an Oxen repository at a
content-addressed path (or inlined as data: URIs), one upload per image however many jobs use it.

An upload is a commit through a workspace, as delivery makes them (`sinks.oxen.commit_once`, through the outbox): any size,
journaled before it is sent, a lost answer looked up on the branch, and bytes already there (a
retry after a lost answer, another manifest's upload) taken as uploaded."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterable
from pathlib import Path

from batchgen.client.api import OxenClient
from batchgen.client.repos import RepoApi
from batchgen.config import UploadTarget
from batchgen.errors import ApiError, NotFound, UsageError
from batchgen.journal.deliveries import DeliveryLedger
from batchgen.journal.outbox import CannotTell
from batchgen.journal.store import Journal
from batchgen.manifest import LocalAsset
from batchgen.sinks.oxen.batching import Batch, Outgoing
from batchgen.sinks.oxen.commit_once import CommitOnce
from batchgen.sinks.oxen.staging import RepositoryRefused
from batchgen.target import DeliveryTarget

log = logging.getLogger(__name__)


class AssetUnavailable(Exception):
    """A job's reference image could not be made reachable; only the jobs that need it fail."""


class AssetPlacer:
    """Gives each local asset a URL the model can fetch, once per run, shared by all its jobs."""

    def __init__(
        self, client: OxenClient, journal: Journal, *, upload: UploadTarget | None, inline: bool
    ) -> None:
        self._client = client
        self._journal = journal
        self._upload = upload
        self._repo: RepoApi | None = None
        if upload is not None:  # the repository its images are committed to, under its prefix
            target = DeliveryTarget(
                namespace=upload.namespace, repo=upload.repo, branch=upload.branch, path=upload.prefix
            )
            self._repo = RepoApi(client, target)
        self._inline = inline
        self._urls: dict[str, str] = {}
        self._failures: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._commits: CommitOnce | None = None  # made, and its leftovers resolved, at the first upload
        self._commits_lock = asyncio.Lock()
        self._placed: str | None = None  # a repository path of this run's images, checked once

    async def prepare(self, assets: Iterable[LocalAsset]) -> None:
        """Place every asset before anything is submitted: a missing upload repository (or branch) is a
        usage error now, not a bare 404 on every job later, and so is a repository the model cannot
        read from. With `create: true` the repository is created first (409, already there, is fine)."""
        target = self._upload
        if target is not None and target.create and not self._inline:
            description = "Reference images for batchgen"
            await self._client.create_repo(
                target.namespace, target.repo, description, kind="upload", public=True
            )
        for asset in {a.sha256: a for a in assets}.values():
            try:
                await self.url(asset)
            except AssetUnavailable as exc:
                if isinstance(exc.__cause__, NotFound) and target is not None:
                    raise UsageError(_missing_target(target)) from None
        if self._repo is not None and self._placed is not None:
            try:
                status = await self._repo.status_without_key(self._placed)
            except ApiError as exc:  # a courtesy check: a job whose image cannot be fetched fails fast anyway
                log.warning("could not check that the model can read the upload repository: %s", exc)
                return
            if status in (401, 403, 404):
                raise UsageError(_not_public(self._repo.target, status))

    async def url(self, asset: LocalAsset) -> str:
        if asset.sha256 in self._urls:
            return self._urls[asset.sha256]
        async with self._locks.setdefault(asset.sha256, asyncio.Lock()):
            if asset.sha256 in self._failures:
                raise AssetUnavailable(self._failures[asset.sha256])
            if asset.sha256 not in self._urls:
                try:
                    self._urls[asset.sha256] = await self._place(asset)
                except (ApiError, OSError) as exc:
                    self._failures[asset.sha256] = f"upload of {asset.name} ({asset.path.name}) failed: {exc}"
                    raise AssetUnavailable(self._failures[asset.sha256]) from exc
        return self._urls[asset.sha256]

    async def _place(self, asset: LocalAsset) -> str:
        content = await asyncio.to_thread(asset.path.read_bytes)
        if self._inline:
            return f"data:{asset.media_type};base64,{base64.b64encode(content).decode()}"
        repo = self._repo
        if repo is None:
            raise OSError("no upload repository is set (use --upload-repo or upload: in the manifest)")
        # Content-addressed: the same image always lands at the same path, so a rerun or another
        # manifest finds it there (one HEAD) instead of uploading it again.
        repo_path = repo.target.repo_path(f"{asset.sha256}{asset.path.suffix.lower()}")
        url = repo.file_url(repo_path)
        if not await repo.file_exists(repo_path):
            await self._upload_once(asset, repo, repo_path, len(content))
            log.info("uploaded reference image %s to %s", asset.name, repo_path)
        self._journal.set_asset_url(asset.sha256, url)
        self._placed = self._placed or repo_path
        return url

    async def _commit_once(self, repo: RepoApi) -> CommitOnce:
        """The upload repository's commit protocol, with what a killed run left resolved (once a run)."""
        async with self._commits_lock:
            if self._commits is None:
                ledger = DeliveryLedger(
                    self._journal, f"assets:{repo.target.ledger_key(self._client.api_base)}"
                )
                # Path("."): never read from, every image is sent from its own path (`source`)
                commits = CommitOnce(repo, ledger, Path("."))
                await commits.resolve_earlier(
                    lambda token, n: f"batchgen: reference images [batchgen:{token}]"
                )
                self._commits = commits
            return self._commits

    async def _upload_once(self, asset: LocalAsset, repo: RepoApi, repo_path: str, size: int) -> None:
        item = Outgoing(asset.path.name, repo_path, size, sha256=asset.sha256, result=True, source=asset.path)
        try:
            commits = await self._commit_once(repo)
            outcome = await commits.send(
                Batch((item,)),
                None,
                lambda token: f"batchgen: add reference image {repo_path} [batchgen:{token}]",
            )
            if repo_path in outcome.delivered:
                return
            why = outcome.failed.get(repo_path) or outcome.stopped or "not uploaded"
        except RepositoryRefused as exc:
            why = str(exc)
        except CannotTell as exc:
            raise OSError(f"cannot tell whether an earlier upload was made ({exc})") from exc
        if "404" in why or "not found" in why.lower():
            raise NotFound(404, "PUT", repo_path, why)
        raise OSError(why)


def _not_public(target: DeliveryTarget, status: int) -> str:
    return (
        f"the upload repository {target.namespace}/{target.repo} is not public: its images answer "
        f"{status} without the key, so the model could not fetch them and every job using one would "
        f"fail. Make the repository public on the hub, or pass --inline-assets to send the images as "
        f"data: URIs (this run submitted nothing)"
    )


def _missing_target(target: UploadTarget) -> str:
    where = f"{target.namespace}/{target.repo}"
    return (
        f"the upload repository {where} (branch {target.branch}) does not exist, or the key cannot "
        f"write to it: the first upload answered 404. Create it (https://oxen.ai/new, public, so the "
        f"model can fetch the images), add `create: true` under `upload:` to let batchgen create it, "
        f"or pass --inline-assets to send the images as data: URIs"
    )
