"""The sender against the emulator on 127.0.0.1 (upstream-faithful: workspaces, the chunked version
upload, 422 "no changes", 409 "behind"): batched commits journaled per file, lost answers resolved by
looking at the branch (never by committing blindly again), refusals narrowed to the file, no
workspace left behind."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from batchgen.client.api import OxenClient
from batchgen.client.repos import RepoApi
from batchgen.config import RetryPolicy, Timeouts
from batchgen.emulator import Emulator, EmulatorConfig, run_emulator
from batchgen.emulator.counters import LoggedRequest
from batchgen.emulator.repos import StoredFile
from batchgen.errors import Unauthenticated, UsageError
from batchgen.journal.deliveries import DELIVERED, SENDING, UNSENT, DeliveryLedger
from batchgen.journal.store import Journal
from batchgen.sinks.oxen import resolve
from batchgen.sinks.oxen.batching import Outgoing
from batchgen.sinks.oxen.sender import Sender
from batchgen.sinks.oxen.wanted import result_items
from batchgen.target import DeliveryTarget

TARGET = DeliveryTarget(namespace="team", repo="campaigns", path="campaigns/spring")
MIB = 1024 * 1024
REQUEST_S = 0.4  # lost answers are looked for again 2 x this later
FAST_RETRY = RetryPolicy(initial_s=0.01, max_s=0.05, request_attempts=4)
SENDER: dict[str, Any] = {"linger_s": 0.05}  # the request timeout and retries are the client's


@dataclass
class Rig:
    emu: Emulator
    run_dir: Path
    journal: Journal
    api: RepoApi

    def sender(self, **changes: Any) -> Sender:
        return Sender(
            self.api, DeliveryLedger(self.journal, "t"), self.run_dir, "spring", **{**SENDER, **changes}
        )

    def result(self, local: str, data: bytes) -> list[Outgoing]:
        path = self.run_dir / local
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        sha256 = hashlib.sha256(data).hexdigest()
        return result_items(TARGET, local, sha256, len(data), {"file": local, "sha256": sha256})

    def commits(self) -> int:
        """Workspace commit requests that reached the emulator."""
        return requests_to(self.emu, "POST", "/merge/")

    def received_twice(self) -> list[tuple[str, str]]:
        """(path, sha256) pairs that more than one request carried."""
        return [pair for pair, n in self.emu.counters.files_received.items() if n > 1]

    def made(self) -> list[Any]:
        """The commits batchgen made (an empty repository's first workspace adds Oxen's initial one)."""
        return [c for c in self.emu.repo_commits("team", "campaigns") if "[batchgen:" in c.message]

    def workspaces_left(self) -> list[object]:
        return list(self.emu.workspaces("team", "campaigns"))


def requests_to(emu: Emulator, method: str, fragment: str) -> int:
    """Requests that reached routes of `method` whose template holds `fragment`."""
    return sum(
        n
        for route, n in emu.counters.requests.items()
        if route.startswith(f"{method} ") and fragment in route
    )


def route_of(emu: Emulator, method: str, fragment: str) -> str:
    """The "METHOD /template" key of the one repository route holding `fragment`."""
    keys = {r.method + " " + r.resource.canonical for r in emu.app.router.routes() if r.resource is not None}
    [key] = [k for k in keys if k.startswith(f"{method} /api/repos") and k.endswith(fragment)]
    return key


@contextlib.asynccontextmanager
async def make_rig(tmp_path: Path, target: DeliveryTarget = TARGET, **config: Any) -> AsyncIterator[Rig]:
    async with AsyncExitStack() as stack:
        emu = await stack.enter_async_context(run_emulator(EmulatorConfig(time_scale=0.001, **config)))
        emu.create_repo(target.namespace, target.repo)
        client = await stack.enter_async_context(
            OxenClient(emu.base_url, emu.api_key, timeouts=Timeouts(request_s=REQUEST_S), retry=FAST_RETRY)
        )
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        journal = Journal.open(run_dir)
        rig = Rig(emu, run_dir, journal, RepoApi(client, target))
        try:
            yield rig
        finally:
            journal.close()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with make_rig(tmp_path) as made:
        yield made


@contextlib.asynccontextmanager
async def sending(sender: Sender) -> AsyncIterator[Sender]:
    """The sender's loop as a task of a TaskGroup for the length of the block (in a run: the run's)."""
    async with asyncio.TaskGroup() as group:
        loop = group.create_task(sender.run())
        try:
            yield sender
        finally:
            loop.cancel()


async def deliver(sender: Sender, *batches: list[Outgoing]) -> None:
    async with sending(sender):
        for items in batches:
            sender.put(items)
        await sender.flush()


def clips(rig: Rig, directory: str, count: int, tag: str = "", size: int = 0) -> list[Outgoing]:
    items: list[Outgoing] = []
    for n in range(count):
        seed = f"{directory}-{n}-{tag}".encode()
        data = (seed * (size // len(seed) + 1))[:size] if size else seed * 50
        items += rig.result(f"videos/{directory}/{n}.mp4", data)
    return items


def assert_on_branch(rig: Rig, items: list[Outgoing]) -> None:
    """Every item is on the branch with the bytes of the run directory (or of its sidecar data)."""
    files = rig.emu.repo_files("team", "campaigns")
    for item in items:
        data = item.data if item.data is not None else (rig.run_dir / item.local).read_bytes()
        assert files[item.repo_path].sha256 == hashlib.sha256(data).hexdigest(), item.repo_path


async def test_results_of_every_directory_land_with_their_sidecars_in_one_commit(rig: Rig) -> None:
    """Ten files in two directories: one workspace, one commit, the journal says delivered."""
    sender = rig.sender()
    items = clips(rig, "hero", 3) + clips(rig, "story", 2)
    await deliver(sender, items)
    assert_on_branch(rig, items)
    commits = rig.made()
    assert len(commits) == 1 == rig.commits()
    assert "batchgen spring: 5 results (10 files) in campaigns/spring/videos" in commits[0].message
    rows = DeliveryLedger(rig.journal, "t").rows()
    assert {row.state for row in rows.values()} == {DELIVERED}
    assert {row.commit_id for row in rows.values()} == {commits[0].id}
    assert sender.progress() == (10, 10) and sender.not_delivered() == {}
    assert rig.workspaces_left() == [] and rig.received_twice() == []


async def test_real_sized_videos_go_through_workspace_parts_and_the_chunked_upload(rig: Rig) -> None:
    """Three 6 MB videos (over PUT …/file's 2 MiB limit) and one of 25 MiB (over 10 MiB: chunked, in
    three chunks) reach the branch byte for byte in one commit."""
    items = clips(rig, "hero", 3, size=6_000_000) + clips(rig, "long", 1, size=25 * MIB)
    sender = rig.sender()
    await deliver(sender, items)
    assert_on_branch(rig, items)
    assert len(rig.made()) == 1
    assert rig.emu.counters.chunks_received == 3
    assert sender.not_delivered() == {} and rig.workspaces_left() == [] and rig.received_twice() == []


async def test_a_proxy_that_caps_request_bodies_gets_smaller_chunks(tmp_path: Path) -> None:
    """A 4 MiB cap in front of the hub: a 6 MB video is refused 413 as a part, then sent in chunks,
    which are halved until they fit; a 12 MiB one likewise. Everything lands, nothing fails."""
    async with make_rig(tmp_path, max_request_bytes=4 * MIB) as rig:
        items = clips(rig, "hero", 1, size=6_000_000) + clips(rig, "long", 1, size=12 * MIB)
        sender = rig.sender()
        await deliver(sender, items)
        assert_on_branch(rig, items)
        assert sender.not_delivered() == {} and rig.workspaces_left() == []
        assert rig.emu.counters.faults["proxy_413"] >= 2


async def test_a_hub_without_the_chunked_upload_gets_a_large_file_as_one_streamed_part(
    tmp_path: Path,
) -> None:
    """A hub that offers no chunked version upload gets a 12 MiB file in one streamed part: delivered, no
    chunk sent."""
    async with make_rig(tmp_path, serve_version_uploads=False) as rig:
        items = clips(rig, "long", 1, size=12 * MIB)
        sender = rig.sender()
        await deliver(sender, items)
        assert_on_branch(rig, items)
        assert sender.not_delivered() == {} and rig.emu.counters.chunks_received == 0


async def test_what_is_delivered_is_never_sent_again_and_a_changed_result_is_a_new_commit(rig: Rig) -> None:
    """Delivering the same bytes again sends nothing; a changed result goes in one new commit of it and its
    sidecar, both versions in the history."""
    await deliver(rig.sender(), clips(rig, "hero", 3))
    first = rig.made()
    again = rig.sender()
    await deliver(again, clips(rig, "hero", 3))  # same bytes: a fresh process over the same journal
    assert rig.commits() == 1 and again.progress() == (6, 6) and again.tally.files_sent == 0
    changed = clips(rig, "hero", 3)[:2] + rig.result("videos/hero/2.mp4", b"a new take" * 40)
    third = rig.sender()
    await deliver(third, changed)
    commits = rig.made()
    assert len(commits) == len(first) + 1
    assert sorted(commits[-1].sent) == [
        "campaigns/spring/videos/hero/2.json",
        "campaigns/spring/videos/hero/2.mp4",
    ]
    history = rig.emu.repo_commits("team", "campaigns", path="campaigns/spring/videos/hero/2.mp4")
    assert len(history) == 2  # both versions stay in the history
    assert (
        rig.emu.repo_file("team", "campaigns", "campaigns/spring/videos/hero/2.mp4").data
        == b"a new take" * 40
    )


async def test_files_already_on_the_branch_are_recorded_delivered_not_failed(tmp_path: Path) -> None:
    """A fresh journal (a copied run directory) sends files that are on the branch already: the
    commit answers 422 "no changes", each file's sha256 on the branch confirms it, nothing fails."""
    async with make_rig(tmp_path) as rig:
        items = clips(rig, "hero", 2)
        await deliver(rig.sender(), items)
        (tmp_path / "copy").mkdir()
        fresh = Rig(rig.emu, rig.run_dir, Journal.open(tmp_path / "copy"), rig.api)
        try:
            sender = fresh.sender()
            await deliver(sender, items)
            assert sender.not_delivered() == {} and sender.progress() == (4, 4)
            assert len(rig.made()) == 1  # no second commit
            rows = DeliveryLedger(fresh.journal, "t").rows()
            assert {row.state for row in rows.values()} == {DELIVERED}
            assert rig.workspaces_left() == []
        finally:
            fresh.journal.close()


@pytest.mark.parametrize("fault", ["upload_cut_rate", "upload_error_after_commit_rate"])
async def test_a_commit_whose_answer_is_lost_is_found_on_the_branch_not_made_again(
    rig: Rig, fault: str
) -> None:
    """The commit was made but the client never hears of it (a cut, or a 5xx from a gateway): one look
    at the history finds its token; nothing is committed or staged twice."""
    rig.emu.set_faults(**{fault: 1.0, "upload_fault_routes": (route_of(rig.emu, "POST", "/merge/{branch}"),)})
    sender = rig.sender()
    await deliver(sender, clips(rig, "hero", 2), clips(rig, "story", 1))
    commits = rig.made()
    assert rig.commits() == len(commits) == 1
    assert rig.received_twice() == [] and len(rig.emu.counters.files_received) == 6
    rows = DeliveryLedger(rig.journal, "t").rows()
    assert {row.state for row in rows.values()} == {DELIVERED}
    assert {row.commit_id for row in rows.values()} == {commits[0].id}
    assert rig.workspaces_left() == []


@pytest.mark.parametrize("step", ["/workspaces", "/files/{dir}", "/chunks", "/complete"])
async def test_cut_answers_while_staging_are_sent_again_without_a_second_commit(rig: Rig, step: str) -> None:
    """Creating, staging a part, storing a chunk and completing a version: each done by the server
    with its answer cut, once. The client sends it again (or checks what is staged): one commit."""
    route = route_of(rig.emu, "PUT" if step in ("/workspaces", "/chunks") else "POST", step)
    rig.emu.set_faults(upload_cut_rate=1.0, upload_fault_routes=(route,))
    healed = False

    def heal(event: str, detail: Any) -> None:
        """At the first request after the first cut: no more cuts (exactly one answer is lost)."""
        nonlocal healed
        if event == "request" and rig.emu.counters.faults["upload_cut"] and not healed:
            healed = True
            rig.emu.set_faults(upload_cut_rate=0.0)

    rig.emu.counters.listeners.append(heal)
    items = clips(rig, "hero", 1, size=2_000_000) + clips(rig, "long", 1, size=11 * MIB)
    sender = rig.sender()
    await deliver(sender, items)
    assert healed and rig.emu.counters.faults["upload_cut"] == 1
    assert_on_branch(rig, items)
    assert len(rig.made()) == 1 and sender.not_delivered() == {}
    assert rig.workspaces_left() == []


async def test_a_lost_commit_answer_that_cannot_be_looked_up_stays_sending_for_the_next_run(rig: Rig) -> None:
    """The commit's answer is cut and the history answers 5xx: the sender cannot tell, so it stops,
    leaves the files `sending` (never `unsent`: that would stage them again blindly) and the next run
    finds the commit by its token."""
    rig.emu.set_faults(
        upload_cut_rate=1.0,
        upload_fault_routes=(route_of(rig.emu, "POST", "/merge/{branch}"),),
        server_error_rate=1.0,
        server_error_routes=(route_of(rig.emu, "GET", "/commits/history/{resource}"),),
    )
    sender = rig.sender()
    await deliver(sender, clips(rig, "hero", 1))
    assert sender.stopped is not None and "cannot tell" in sender.stopped
    assert {row.state for row in DeliveryLedger(rig.journal, "t").rows().values()} == {SENDING}
    rig.emu.set_faults(upload_cut_rate=0.0, server_error_rate=0.0)
    await rig.sender().resolve_earlier()
    rows = DeliveryLedger(rig.journal, "t").rows()
    assert {row.state for row in rows.values()} == {DELIVERED}
    assert {row.commit_id for row in rows.values()} == {c.id for c in rig.made()}
    assert rig.commits() == 1 and rig.workspaces_left() == []


async def test_a_5xx_before_the_commit_is_sent_again_once_the_branch_shows_it_was_not_made(rig: Rig) -> None:
    """Commit requests refused with a 5xx are sent again only once the branch shows no commit was made: three
    requests, one commit, everything delivered, no workspace left."""
    commit_route = route_of(rig.emu, "POST", "/merge/{branch}")
    seen = 0

    def heal_on_third(event: str, detail: Any) -> None:
        nonlocal seen
        if event == "request" and isinstance(detail, LoggedRequest) and detail.route == commit_route:
            seen += 1
            if seen == 3:
                rig.emu.set_faults(server_error_rate=0.0)

    rig.emu.set_faults(server_error_rate=1.0, server_error_routes=(commit_route,))
    rig.emu.counters.listeners.append(heal_on_third)
    sender = rig.sender()
    await deliver(sender, clips(rig, "hero", 2))
    assert rig.commits() == 3 and len(rig.made()) == 1
    assert sender.progress() == (4, 4) and rig.workspaces_left() == []


async def test_a_server_that_commits_after_the_client_gave_up_is_found_by_the_second_look(rig: Rig) -> None:
    """The server reads the commit, stalls past the client's timeout, then commits: the look at once
    finds nothing; the look two request timeouts later finds the commit; it is not made again."""
    rig.emu.set_faults(
        slow_response_rate=1.0,
        slow_response_seconds=REQUEST_S * 1.5,
        slow_response_routes=(route_of(rig.emu, "POST", "/merge/{branch}"),),
    )
    sender = rig.sender()
    await deliver(sender, clips(rig, "hero", 1))
    assert rig.commits() == 1 and len(rig.made()) == 1
    assert sender.progress() == (2, 2) and rig.workspaces_left() == []


async def test_a_branch_that_moved_under_a_staged_file_is_staged_again_on_its_new_head(rig: Rig) -> None:
    """409 "workspace is behind": someone committed another version of the same path while the
    workspace was open. The files are staged again into a new workspace and land; none is left."""
    await deliver(rig.sender(), rig.result("videos/hero/0.mp4", b"first take" * 40))
    moved = False

    def move_branch(event: str, detail: Any) -> None:
        nonlocal moved
        if event == "staged" and not moved:
            moved = True
            commit_as_if_sent(
                rig, {"campaigns/spring/videos/hero/0.mp4": b"someone else's" * 40}, "ffffffffffff"
            )

    rig.emu.counters.listeners.append(move_branch)
    items = rig.result("videos/hero/0.mp4", b"second take" * 40)
    sender = rig.sender()
    await deliver(sender, items)
    assert moved and sender.not_delivered() == {}
    assert_on_branch(rig, items)
    assert rig.workspaces_left() == []


async def test_a_filename_with_accents_spaces_and_signs_lands_under_its_own_name(tmp_path: Path) -> None:
    """Part filenames go raw (no percent-encoding), and a branch holding '/' works."""
    target = DeliveryTarget(namespace="team", repo="campaigns", branch="review/client-a", path="drops/spring")
    async with make_rig(tmp_path, target) as rig:
        rig.emu.state.repos.commit(
            "team", "campaigns", "main", {"README.md": StoredFile(b"hi", "text/markdown")},
            message="init", author="a", email="e",
        )  # fmt: skip
        rig.emu.state.repos.create_branch(
            "team",
            "campaigns",
            "review/client-a",
            rig.emu.state.repos.repo("team", "campaigns").branches["main"],
        )  # type: ignore[union-attr]
        data = b"clip" * 100
        local = "videos/héro (red)+1/take 1.mp4"
        path = rig.run_dir / local
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        items = result_items(target, local, sha, len(data), {"file": local, "sha256": sha})
        sender = rig.sender()
        await deliver(sender, items)
        assert sender.not_delivered() == {}
        files = rig.emu.repo_files("team", "campaigns", revision="review/client-a")
        assert files["drops/spring/videos/héro (red)+1/take 1.mp4"].data == data
        assert "drops/spring/videos/héro (red)+1/take 1.json" in files


async def test_a_repository_that_turns_read_only_stops_the_delivery(rig: Rig) -> None:
    """A 403 from a read-only repository stops the delivery: nothing committed, every file listed as not
    delivered, no workspace left."""
    rig.emu.set_repo_read_only("team", "campaigns")
    sender = rig.sender(max_files=2)
    await deliver(sender, clips(rig, "hero", 3))
    assert sender.stopped is not None and "403" in sender.stopped
    assert len(sender.not_delivered()) == 6 and rig.made() == []
    assert rig.workspaces_left() == []


async def test_a_result_changed_on_disk_since_it_was_verified_is_not_sent(rig: Rig) -> None:
    """A result whose bytes changed since verification is not sent (and says so); the other result is
    delivered."""
    items = clips(rig, "hero", 2)
    (rig.run_dir / "videos/hero/1.mp4").write_bytes(b"tampered")
    sender = rig.sender()
    await deliver(sender, items)
    assert "changed on disk" in sender.not_delivered()["campaigns/spring/videos/hero/1.mp4"]
    assert "campaigns/spring/videos/hero/1.mp4" not in rig.emu.repo_files("team", "campaigns")
    assert "campaigns/spring/videos/hero/0.mp4" in rig.emu.repo_files("team", "campaigns")


def commit_as_if_sent(rig: Rig, files: dict[str, bytes], token: str) -> str:
    stored = {path: StoredFile(data, "video/mp4") for path, data in files.items()}
    return rig.emu.state.repos.commit(
        "team", "campaigns", "main", stored, message=f"m [batchgen:{token}]", author="a", email="e"
    ).id


async def test_commits_a_killed_process_left_unanswered_are_resolved_from_the_branch(rig: Rig) -> None:
    """Sends a killed process journaled are resolved from the branch at start: the one whose token is there is
    delivered with that commit, the other is unsent; no commit is made."""
    ledger = DeliveryLedger(rig.journal, "t")
    made, lost = {"campaigns/spring/a.mp4": b"made"}, {"campaigns/spring/b.mp4": b"lost"}
    sha = {path: hashlib.sha256(data).hexdigest() for path, data in (made | lost).items()}
    ledger.sending([(p, sha[p]) for p in made], "aaaaaaaaaaaa", None)
    ledger.sending([(p, sha[p]) for p in lost], "bbbbbbbbbbbb", None)
    commit_id = commit_as_if_sent(rig, made, "aaaaaaaaaaaa")
    sender = rig.sender()
    await sender.resolve_earlier()
    rows = DeliveryLedger(rig.journal, "t").rows()
    assert (rows["campaigns/spring/a.mp4"].state, rows["campaigns/spring/a.mp4"].commit_id) == (
        DELIVERED,
        commit_id,
    )
    assert rows["campaigns/spring/b.mp4"].state == UNSENT and rig.commits() == 0


async def test_a_workspace_a_killed_process_staged_is_committed_without_staging_again(rig: Rig) -> None:
    """Killed between staging and commit: the rerun finds the workspace the journal names, commits
    what it staged (nothing sent twice) and marks the rest to send again."""
    first = rig.sender()
    items = clips(rig, "hero", 2)

    def kill_before_commit(event: str, detail: Any) -> None:
        if event == "request" and isinstance(detail, LoggedRequest) and "/merge/" in detail.route:
            rig.emu.set_faults(server_error_rate=1.0)  # stands in for the process dying here

    rig.emu.counters.listeners.append(kill_before_commit)
    async with sending(first):
        first.put(items)
        with contextlib.suppress(Exception):
            await first.flush()
    rig.emu.counters.listeners.clear()
    rig.emu.set_faults(server_error_rate=0.0)
    # the sender gave up on the commit: the journal keeps the workspace to finish or remove
    staged_before = dict(rig.emu.counters.files_received)
    second = rig.sender()
    await deliver(second, items)
    assert second.not_delivered() == {}
    assert_on_branch(rig, items)
    assert dict(rig.emu.counters.files_received) == staged_before or rig.received_twice() == []
    assert rig.workspaces_left() == []


async def test_without_the_history_back_to_the_head_the_files_are_hashed_instead(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no history to read, leftover sends are resolved by the files on the branch: bytes found there are
    delivered (with that commit), bytes not found are unsent."""
    monkeypatch.setattr(resolve, "MAX_HISTORY_PAGES", 0)
    made = {"campaigns/spring/a.mp4": b"made"}
    commit_id = commit_as_if_sent(rig, made, "cccccccccccc")
    ledger = DeliveryLedger(rig.journal, "t")
    ledger.sending([("campaigns/spring/a.mp4", hashlib.sha256(b"made").hexdigest())], "dddddddddddd", "x")
    ledger.sending([("campaigns/spring/z.mp4", hashlib.sha256(b"gone").hexdigest())], "eeeeeeeeeeee", "x")
    await rig.sender().resolve_earlier()
    rows = DeliveryLedger(rig.journal, "t").rows()
    assert (rows["campaigns/spring/a.mp4"].state, rows["campaigns/spring/a.mp4"].commit_id) == (
        DELIVERED,
        commit_id,
    )
    assert rows["campaigns/spring/z.mp4"].state == UNSENT


async def test_sending_is_journaled_before_the_workspace_is_created(rig: Rig) -> None:
    """The journal says `sending`, with the workspace's token, before the request that creates the
    workspace."""
    seen: list[tuple[set[str], set[str]]] = []
    create = route_of(rig.emu, "PUT", "/workspaces")

    def on_request(event: str, detail: Any) -> None:
        if event == "request" and isinstance(detail, LoggedRequest) and detail.route == create:
            rows = DeliveryLedger(rig.journal, "t").rows().values()
            seen.append(({row.state for row in rows}, {f"batchgen-{row.token}" for row in rows}))

    rig.emu.counters.listeners.append(on_request)
    await deliver(rig.sender(), clips(rig, "hero", 1))
    [(states, workspaces)] = seen
    assert states == {SENDING} and len(workspaces) == 1
    assert rig.emu.counters.workspaces_created == 1


def test_a_journal_without_the_deliveries_table_gets_it(tmp_path: Path) -> None:
    """A journal from before delivery existed gets the deliveries table when a ledger first writes."""
    import sqlite3

    conn = sqlite3.connect(tmp_path / "state.sqlite")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.commit()
    conn.close()
    journal = Journal.open(tmp_path)
    try:
        DeliveryLedger(journal, "t").delivered([("p", "s")], "c")
        assert DeliveryLedger(journal, "t").is_delivered("p", "s")
    finally:
        journal.close()


async def test_a_large_queue_is_read_and_sent_in_parts(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A queue longer than CHUNK_FILES is read and committed in parts (4, 4, 2), no file sent twice."""
    from batchgen.sinks.oxen import sender as sender_module

    monkeypatch.setattr(sender_module, "CHUNK_FILES", 4)
    sender = rig.sender()
    await deliver(sender, clips(rig, "hero", 5))
    assert [len(c.sent) for c in rig.made()] == [4, 4, 2]
    assert sender.progress() == (10, 10) and rig.received_twice() == []


async def test_a_sending_loop_that_breaks_ends_by_itself_and_flush_raises_its_error(rig: Rig) -> None:
    """A refused key (401) ends the loop without failing the TaskGroup it runs in (a delivery that
    breaks never cuts short the run it delivers); `flush` raises the error, and nothing is committed."""
    timeouts = Timeouts(request_s=REQUEST_S)
    async with OxenClient(rig.emu.base_url, "not-the-key", timeouts=timeouts, retry=FAST_RETRY) as client:
        sender = Sender(
            RepoApi(client, TARGET), DeliveryLedger(rig.journal, "t"), rig.run_dir, "spring", **SENDER
        )
        async with asyncio.TaskGroup() as group:
            loop = group.create_task(sender.run())
            sender.put(clips(rig, "hero", 1))
            with pytest.raises(Unauthenticated):
                await sender.flush()
            assert loop.done() and not loop.cancelled() and loop.exception() is None
    assert rig.made() == []


async def test_a_wrong_key_at_the_check_is_a_usage_error_naming_the_repository(rig: Rig) -> None:
    """A 401 before paid work: UsageError, the repository named, the key not said; nothing written."""
    async with OxenClient(rig.emu.base_url, "not-the-key", timeouts=Timeouts(request_s=REQUEST_S)) as client:
        with pytest.raises(UsageError, match="team/campaigns cannot be used with this key") as raised:
            await RepoApi(client, TARGET).check()
    assert "not-the-key" not in str(raised.value)
    assert requests_to(rig.emu, "POST", "") == 0


async def test_a_wrong_key_while_resolving_an_earlier_commit_ends_the_delivery_with_it(rig: Rig) -> None:
    """A commit a killed process left `sending`, looked for with a key the API refuses: the 401 is no
    "cannot tell" that lets the delivery go on; `flush` raises it, and the row stays `sending` for a
    run with the right key."""
    ledger = DeliveryLedger(rig.journal, "t")
    ledger.sending([("campaigns/spring/videos/a.mp4", "0" * 64)], "abcdef123456", None)
    timeouts = Timeouts(request_s=REQUEST_S)
    async with OxenClient(rig.emu.base_url, "not-the-key", timeouts=timeouts, retry=FAST_RETRY) as client:
        sender = Sender(RepoApi(client, TARGET), ledger, rig.run_dir, "spring", **SENDER)
        async with asyncio.TaskGroup() as group:
            group.create_task(sender.run(sender.resolve_earlier))
            with pytest.raises(Unauthenticated):
                await sender.flush()
    assert sender.stopped is None
    assert {row.state for row in ledger.rows().values()} == {SENDING}
