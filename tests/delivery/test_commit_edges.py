"""The edges of the commit-once protocol: a workspace someone deletes, a commit that lands late, chunks
an earlier run left at another chunk size, a file that vanishes mid-upload, a leftover refused at start,
a kill while a workspace is being removed, a DELETE that fails, a path that looks like a token."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from batchgen.emulator.api_versions import version_hash
from batchgen.emulator.counters import LoggedRequest
from batchgen.emulator.workspaces import commit as commit_workspace
from batchgen.journal.deliveries import DeliveryLedger
from tests.delivery.test_sender import (
    FAST_RETRY,
    MIB,
    Rig,
    assert_on_branch,
    clips,
    commit_as_if_sent,
    deliver,
    make_rig,
    route_of,
)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with make_rig(tmp_path) as made:
        yield made


def _repo(rig: Rig) -> Any:
    return rig.emu.state.repos.repo("team", "campaigns")


# -- a workspace that is gone is told apart from a refusal (its 404's `status_description`) ---------


async def test_a_workspace_that_vanishes_before_its_commit_is_staged_again_not_a_refusal(rig: Rig) -> None:
    """Someone's `DELETE …/workspaces` (it wipes every workspace) lands between staging and commit:
    the commit's 404 says "Workspace not found" (`status_description`), so the files are staged again
    into a new workspace and land, instead of the delivery stopping as refused."""
    cleared = False

    def clear_all(event: str, detail: Any) -> None:
        nonlocal cleared
        if event == "staged" and not cleared:
            cleared = True
            _repo(rig).workspaces.clear()  # what DELETE /api/repos/team/campaigns/workspaces does

    rig.emu.counters.listeners.append(clear_all)
    items = clips(rig, "hero", 2)
    sender = rig.sender()
    await deliver(sender, items)
    assert cleared
    assert sender.stopped is None, sender.stopped
    assert sender.not_delivered() == {}
    assert_on_branch(rig, items)


async def test_a_late_commit_that_lands_as_the_commit_is_sent_again_is_found_not_failed(rig: Rig) -> None:
    """A gateway answers 5xx and the commit lands later, after both looks: the commit sent again finds
    the unnamed workspace gone (404), looks once more, finds the token, and records the files as
    delivered in that commit (never `failed`, never a stop)."""
    merge = route_of(rig.emu, "POST", "/merge/{branch}")
    seen = 0

    def late_commit(event: str, detail: Any) -> None:
        nonlocal seen
        if event != "request" or not isinstance(detail, LoggedRequest) or detail.route != merge:
            return
        seen += 1
        if seen == 2:  # the first commit, held by the gateway, lands now
            rig.emu.set_faults(server_error_rate=0.0)
            repo = _repo(rig)
            [workspace] = list(repo.workspaces.values())
            token = workspace.id.removeprefix("batchgen-")
            commit_workspace(
                rig.emu.state.repos, repo, workspace, "main",
                message=f"batchgen spring: late [batchgen:{token}]", author="batchgen", email="e",
            )  # fmt: skip
            del repo.workspaces[workspace.id]  # unnamed: the server removes it after its commit

    rig.emu.set_faults(server_error_rate=1.0, server_error_routes=(merge,))
    rig.emu.counters.listeners.append(late_commit)
    items = clips(rig, "hero", 1)
    sender = rig.sender()
    await deliver(sender, items)
    assert seen == 2 and len(rig.made()) == 1
    assert sender.stopped is None, sender.stopped
    assert sender.not_delivered() == {}
    rows = DeliveryLedger(rig.journal, "t").rows()
    assert {row.commit_id for row in rows.values()} == {rig.made()[0].id}


# -- chunks stored at another chunk size ----------------------------------------------------------


async def test_chunks_left_under_a_cap_that_since_appeared_refuse_the_file_alone_saying_why(
    tmp_path: Path,
) -> None:
    """10 MiB chunks of an earlier run, then a 6 MiB proxy cap: every chunking starts at offset 0, where
    the server keeps the earlier 10 MiB chunk, so the version never assembles, and the proxy refuses
    the file whole. Upstream 0.54.0 offers no third way: the file is refused alone, with both reasons,
    and the rest is delivered."""
    async with make_rig(tmp_path, max_request_bytes=6 * MIB) as rig:
        items = clips(rig, "long", 1, size=12 * MIB) + clips(rig, "hero", 1)
        data = (rig.run_dir / items[0].local).read_bytes()
        _repo(rig).chunks[version_hash(data)] = {0: data[: 10 * MIB]}  # what the killed run left
        sender = rig.sender()
        await deliver(sender, items)
        why = sender.not_delivered()[items[0].repo_path]
        assert "did not stage it" in why and "sent whole" in why and "413" in why
        assert set(sender.not_delivered()) == {items[0].repo_path}
        assert_on_branch(rig, items[2:])


@pytest.mark.parametrize(("earlier_chunk", "cap"), [(5 * MIB, None)], ids=["a-proxy-cap-went-away"])
async def test_chunks_an_earlier_run_left_at_another_chunk_size_do_not_block_the_file_forever(
    tmp_path: Path, earlier_chunk: int, cap: int | None
) -> None:
    """An earlier run was killed after the first chunk of a 12 MiB video at 5 MiB chunks (behind a proxy
    that has since gone). The server keeps a stored chunk per offset until a complete succeeds, so the
    10 MiB chunking never assembles: the file is then sent whole, as one streamed part, and lands."""
    async with make_rig(tmp_path, max_request_bytes=cap) as rig:
        items = clips(rig, "long", 1, size=12 * MIB)
        data = (rig.run_dir / items[0].local).read_bytes()
        _repo(rig).chunks[version_hash(data)] = {0: data[:earlier_chunk]}  # what the killed run left
        sender = rig.sender()
        await deliver(sender, items)
        assert sender.not_delivered() == {}
        assert_on_branch(rig, items)


# -- a local read that fails while a chunk is sent ------------------------------------------------


async def test_a_large_file_removed_during_its_chunked_upload_fails_alone_without_crashing(rig: Rig) -> None:
    """The file is removed after its first chunk: that file is refused alone ("cannot read"), the other
    files of the commit land, and the delivery task does not crash."""
    items = clips(rig, "long", 1, size=25 * MIB) + clips(rig, "hero", 1)
    removed = False

    def remove(event: str, detail: Any) -> None:
        nonlocal removed
        if event == "chunk_stored" and not removed:
            removed = True
            (rig.run_dir / items[0].local).unlink()

    rig.emu.counters.listeners.append(remove)
    sender = rig.sender()
    await deliver(sender, items)  # raises FileNotFoundError on the reviewed code
    assert removed
    assert set(sender.not_delivered()) == {items[0].repo_path}
    assert_on_branch(rig, items[1:])


# -- a kill while a conflicted workspace is removed -----------------------------------------------


async def test_a_kill_while_a_conflicted_workspace_is_deleted_leaves_no_workspace_behind(rig: Rig) -> None:
    """409 "behind", and the process killed while the conflicted workspace is being removed: the
    workspace is removed before its files leave `sending`, so the rerun still finds it by the token,
    delivers everything, and no workspace stays in the repository."""
    await deliver(rig.sender(), rig.result("videos/hero/0.mp4", b"first take" * 40))
    first = rig.sender()
    delete = route_of(rig.emu, "DELETE", "/workspaces/{workspace_id}")
    moved = killed = False

    def on_event(event: str, detail: Any) -> None:
        nonlocal moved, killed
        if event == "staged" and not moved:
            moved = True
            commit_as_if_sent(rig, {"campaigns/spring/videos/hero/0.mp4": b"someone else's" * 40}, "f" * 12)
        if event == "request" and isinstance(detail, LoggedRequest) and detail.route == delete and not killed:
            killed = True  # the process dies as its DELETE leaves: the server never acts on it
            rig.emu.set_faults(server_error_rate=1.0, server_error_routes=(delete,))
            assert first._task is not None
            first._task.cancel()

    rig.emu.counters.listeners.append(on_event)
    items = rig.result("videos/hero/0.mp4", b"second take" * 40)
    with contextlib.suppress(asyncio.CancelledError):
        await deliver(first, items)
    assert moved and killed
    rig.emu.counters.listeners.clear()
    rig.emu.set_faults(server_error_rate=0.0)
    rerun = rig.sender()
    await rerun.resolve_earlier()
    await deliver(rerun, items)
    assert rerun.not_delivered() == {} and rerun.stopped is None
    assert_on_branch(rig, items)
    assert rig.workspaces_left() == []


# -- a DELETE that fails --------------------------------------------------------------------------


async def test_a_run_that_delivers_everything_leaves_no_workspace_even_when_a_delete_fails_once(
    tmp_path: Path,
) -> None:
    """A fresh journal over files already on the branch: 422 NoChanges, the workspace (kept by the
    server on a 422) is DELETEd, and that DELETE fails through all its retries. It is remembered and
    deleted again before the delivery reports complete; one that still cannot be removed makes the
    delivery incomplete (never a silent exit 0 with a workspace left)."""
    async with make_rig(tmp_path) as rig:
        items = clips(rig, "hero", 1)
        await deliver(rig.sender(), items)
        from batchgen.journal.store import Journal

        delete = route_of(rig.emu, "DELETE", "/workspaces/{workspace_id}")
        failed = 0

        def heal_after_the_retries(event: str, detail: Any) -> None:
            nonlocal failed
            if event == "request" and getattr(detail, "route", None) == delete:
                failed += 1
                if failed > FAST_RETRY.request_attempts:
                    rig.emu.set_faults(server_error_rate=0.0)

        rig.emu.counters.listeners.append(heal_after_the_retries)
        for copy, heals in (("copy", True), ("again", False)):
            (tmp_path / copy).mkdir()
            fresh = Rig(rig.emu, rig.run_dir, Journal.open(tmp_path / copy), rig.api)
            rig.emu.set_faults(server_error_rate=1.0, server_error_routes=(delete,))
            failed = 0 if heals else -1_000_000  # the second time, the DELETE never heals
            sender = fresh.sender()
            try:
                await deliver(sender, items)
                assert sender.not_delivered() == {}
                if heals:
                    assert sender.leftover_workspaces == [] and rig.workspaces_left() == []
                else:
                    assert [w.id for w in rig.workspaces_left()] == sender.leftover_workspaces != []
            finally:
                fresh.journal.close()


# -- a reference image's leftover that is refused, or cannot be told ----------------------------


async def test_a_reference_image_leftover_refused_at_start_fails_the_asset_not_the_run(
    tmp_path: Path,
) -> None:
    """A reference image whose earlier upload cannot be resolved, then a key that cannot write: the
    refusal fails the asset (and the jobs that need it), never the whole run with an exception."""
    from batchgen.emulator import EmulatorConfig, run_emulator
    from batchgen.errors import UsageError
    from batchgen.run.assets import AssetUnavailable
    from tests.delivery.test_assets import COMMIT, image, place

    history = "GET /api/repos/{namespace}/{repo}/commits/history/{resource:.+}"
    async with run_emulator(EmulatorConfig(time_scale=0.001)) as emu:
        emu.create_repo("acme", "refs")
        keys = {r.method + " " + r.resource.canonical for r in emu.app.router.routes() if r.resource}
        [history] = [k for k in keys if k.startswith("GET ") and "/commits/history/" in k]

        def gateway_down_at_commit(event: str, detail: Any) -> None:
            if event == "request" and isinstance(detail, LoggedRequest) and detail.route == COMMIT:
                emu.set_faults(server_error_rate=1.0, server_error_routes=(COMMIT, history))

        emu.counters.listeners.append(gateway_down_at_commit)
        asset = image(tmp_path, "mug.png", 4096)
        with pytest.raises(AssetUnavailable):  # run 1 cannot tell: `sending`, its workspace kept
            await place(emu, tmp_path, asset)
        assert len(emu.workspaces("acme", "refs")) == 1
        emu.counters.listeners.clear()
        emu.set_faults(server_error_rate=0.0)
        emu.set_repo_read_only("acme", "refs")  # the key lost write access since
        with pytest.raises((AssetUnavailable, UsageError)):  # raises RepositoryRefused on this code
            await place(emu, tmp_path, asset)


# -- a delivery path that looks like a token -------------------------------------------------------


async def test_a_commit_whose_directory_looks_like_a_token_is_still_found_by_its_own_token(
    tmp_path: Path,
) -> None:
    """A delivery path holding `[batchgen:…]`: the token is read from the commit message's end, so a lost
    answer still finds this commit by its own token (no second commit, the commit id kept)."""
    from batchgen.target import DeliveryTarget

    target = DeliveryTarget(namespace="team", repo="campaigns", path="drops/[batchgen:000000000000]")
    async with make_rig(tmp_path, target) as rig:
        merge = route_of(rig.emu, "POST", "/merge/{branch}")
        rig.emu.set_faults(upload_cut_rate=1.0, upload_fault_routes=(merge,))
        from batchgen.sinks.oxen.wanted import result_items

        data = b"clip" * 100
        (rig.run_dir / "videos/hero").mkdir(parents=True)
        (rig.run_dir / "videos/hero/0.mp4").write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        sender = rig.sender()
        await deliver(sender, result_items(target, "videos/hero/0.mp4", sha, len(data), {"sha256": sha}))
        assert sender.not_delivered() == {}
        assert rig.commits() == 1  # one commit request
        assert rig.received_twice() == []
        rows = DeliveryLedger(rig.journal, "t").rows()
        assert {row.commit_id for row in rows.values()} == {rig.made()[0].id}
