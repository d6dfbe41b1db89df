"""Reference images upload through a workspace commit, as results are delivered: any size (PUT …/file
refuses more than 2 MiB upstream), a name with spaces or a colon, and a commit whose answer was lost
found on the branch instead of failing the jobs that need the image."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from batchgen.client.api import OxenClient
from batchgen.client.repos import RepoApi
from batchgen.config import RetryPolicy, Timeouts, UploadTarget
from batchgen.emulator import Emulator, EmulatorConfig, run_emulator
from batchgen.errors import ResponseTimeout, Unauthenticated, UsageError
from batchgen.journal.store import Journal
from batchgen.manifest.model import LocalAsset
from batchgen.run.assets import AssetPlacer

COMMIT = "POST /api/repos/{namespace}/{repo}/workspaces/{workspace_id}/merge/{branch}"
TARGET = UploadTarget(namespace="acme", repo="refs")


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with run_emulator(EmulatorConfig(time_scale=0.001)) as running:
        running.create_repo("acme", "refs")
        yield running


def image(folder: Path, name: str, size: int) -> LocalAsset:
    data = (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * (size // 256 + 1))[:size]
    path = folder / name
    path.write_bytes(data)
    return LocalAsset("mug", path, hashlib.sha256(data).hexdigest(), size, "image/png")


async def place(emu: Emulator, run_dir: Path, asset: LocalAsset, *, key: str | None = None) -> str:
    timeouts, retry = Timeouts(request_s=0.5), RetryPolicy(initial_s=0.01, max_s=0.05)
    async with OxenClient(emu.base_url, key or emu.api_key, timeouts=timeouts, retry=retry) as client:
        journal = Journal.open(run_dir)
        try:
            placer = AssetPlacer(client, journal, upload=TARGET, inline=False)
            await placer.prepare([asset])
            return await placer.url(asset)
        finally:
            journal.close()


@pytest.mark.parametrize("size", [3 * 1024 * 1024, 12 * 1024 * 1024])
async def test_a_large_reference_image_is_uploaded_through_a_workspace(
    emu: Emulator, tmp_path: Path, size: int
) -> None:
    """A reference image of 3 or 12 MiB is uploaded through a workspace (no PUT of the file), stored under its
    sha256, no workspace left."""
    asset = image(tmp_path, "mug: studio shot.png", size)
    url = await place(emu, tmp_path, asset)
    stored = emu.repo_file("acme", "refs", f"batchgen-assets/{asset.sha256}.png")
    assert stored.sha256 == asset.sha256 and url.endswith(f"/batchgen-assets/{asset.sha256}.png")
    assert not [r for r in emu.counters.requests if r.startswith("PUT ") and "/file/" in r]
    assert emu.workspaces("acme", "refs") == []


async def test_a_reference_upload_whose_commit_answer_was_lost_is_found_not_failed(
    emu: Emulator, tmp_path: Path
) -> None:
    """A reference upload whose commit answer is cut is found on the branch: one commit, one commit request,
    the image stored."""
    emu.set_faults(upload_cut_rate=1.0, upload_fault_routes=(COMMIT,))
    asset = image(tmp_path, "mug.png", 4096)
    await place(emu, tmp_path, asset)
    made = [c for c in emu.repo_commits("acme", "refs") if "[batchgen:" in c.message]
    assert len(made) == 1 and emu.counters.requests[COMMIT] == 1
    assert emu.repo_file("acme", "refs", f"batchgen-assets/{asset.sha256}.png").sha256 == asset.sha256


async def test_a_wrong_key_is_not_a_failed_upload_of_one_image(emu: Emulator, tmp_path: Path) -> None:
    """An upload the API refuses with 401 raises Unauthenticated (the run stops), not AssetUnavailable
    (which fails only the jobs that need the image and lets the run go on); nothing is committed."""
    asset = image(tmp_path, "mug.png", 4096)
    with pytest.raises(Unauthenticated):
        await place(emu, tmp_path, asset, key="not-the-key")
    assert not [c for c in emu.repo_commits("acme", "refs") if "[batchgen:" in c.message]


async def test_a_check_without_the_key_that_gets_no_answer_warns_and_the_image_is_placed(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The keyless read that checks the model can fetch the images is a courtesy: when its answer is
    lost, the run goes on with a warning (a job whose image cannot be fetched fails fast anyway)."""

    async def lost(self: RepoApi, path: str) -> int:
        raise ResponseTimeout(f"HEAD {path}: no response within the timeout")

    monkeypatch.setattr(RepoApi, "status_without_key", lost)
    asset = image(tmp_path, "mug.png", 4096)
    url = await place(emu, tmp_path, asset)
    assert url.endswith(f"/batchgen-assets/{asset.sha256}.png")
    assert "could not check that the model can read the upload repository" in caplog.text


async def test_an_upload_repository_the_model_cannot_read_is_a_usage_error(
    emu: Emulator, tmp_path: Path
) -> None:
    """A private upload repository (its files answer 404 without the key) is refused once the image is
    placed, saying how to fix it, before any job could be submitted."""
    emu.create_repo("acme", "private-refs", is_public=False)
    asset = image(tmp_path, "mug.png", 4096)
    timeouts = Timeouts(request_s=0.5)
    async with OxenClient(emu.base_url, emu.api_key, timeouts=timeouts) as client:
        journal = Journal.open(tmp_path)
        try:
            placer = AssetPlacer(
                client, journal, upload=UploadTarget(namespace="acme", repo="private-refs"), inline=False
            )
            with pytest.raises(UsageError, match="acme/private-refs is not public: its images answer 404"):
                await placer.prepare([asset])
        finally:
            journal.close()
