"""The sender against the emulator on 127.0.0.1: batched commits journaled per file, lost answers
resolved by looking at the branch (never by sending blindly again), refusals narrowed to the file."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from batchgen.api import OxenClient
from batchgen.config import RetryPolicy, Timeouts
from batchgen.delivery import resolve
from batchgen.delivery.batching import Outgoing
from batchgen.delivery.ledger import DELIVERED, FAILED, SENDING, UNSENT, DeliveryLedger
from batchgen.delivery.repo_api import RepoApi
from batchgen.delivery.sender import Sender
from batchgen.delivery.target import DeliveryTarget
from batchgen.delivery.wanted import result_items
from batchgen.emulator import Emulator, EmulatorConfig, run_emulator
from batchgen.emulator.repos import StoredFile
from batchgen.store import Journal

UPLOAD = "PUT /api/repos/{namespace}/{repo}/file/{branch}/{path}"
TARGET = DeliveryTarget(namespace="team", repo="campaigns", path="campaigns/spring")
REQUEST_S = 0.4  # lost answers are looked for again 2 x this later
FAST_RETRY = RetryPolicy(initial_s=0.01, max_s=0.05, request_attempts=4)


@dataclass
class Rig:
    emu: Emulator
    run_dir: Path
    journal: Journal
    api: RepoApi
    senders: list[Sender] = field(default_factory=list)

    def sender(self, **changes: Any) -> Sender:
        options: dict[str, Any] = {"request_s": REQUEST_S, "policy": FAST_RETRY, "linger_s": 0.05, **changes}
        sender = Sender(self.api, DeliveryLedger(self.journal, "t"), self.run_dir, "spring", **options)
        self.senders.append(sender)
        return sender

    def result(self, local: str, data: bytes) -> list[Outgoing]:
        path = self.run_dir / local
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        sha256 = hashlib.sha256(data).hexdigest()
        return result_items(TARGET, local, sha256, len(data), {"file": local, "sha256": sha256})

    def puts(self) -> int:
        return self.emu.counters.requests[UPLOAD]

    def sent_files(self) -> list[str]:
        """Every file of every upload that made a commit (a file sent twice appears twice)."""
        return [path for commit in self.emu.repo_commits("team", "campaigns") for path in commit.sent]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with AsyncExitStack() as stack:
        emu = await stack.enter_async_context(run_emulator(EmulatorConfig(time_scale=0.001)))
        emu.create_repo("team", "campaigns")
        client = await stack.enter_async_context(
            OxenClient(emu.base_url, emu.api_key, timeouts=Timeouts(request_s=REQUEST_S), retry=FAST_RETRY)
        )
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        journal = Journal.open(run_dir)
        rig = Rig(emu, run_dir, journal, RepoApi(client, TARGET))
        try:
            yield rig
        finally:
            for sender in rig.senders:
                await sender.aclose()
            journal.close()


async def deliver(sender: Sender, *batches: list[Outgoing]) -> None:
    sender.start()
    for items in batches:
        sender.put(items)
    await sender.flush()


def clips(rig: Rig, directory: str, count: int, tag: str = "") -> list[Outgoing]:
    items: list[Outgoing] = []
    for n in range(count):
        items += rig.result(f"videos/{directory}/{n}.mp4", f"{directory}-{n}-{tag}".encode() * 50)
    return items


async def test_results_land_with_their_sidecars_in_one_commit_per_directory(rig: Rig) -> None:
    sender = rig.sender()
    await deliver(sender, clips(rig, "hero", 3), clips(rig, "story", 2))
    files = rig.emu.repo_files("team", "campaigns")
    assert len(files) == 10
    for path, stored in files.items():
        local = path.removeprefix("campaigns/spring/")
        expected = (rig.run_dir / local).read_bytes() if local.endswith(".mp4") else None
        if expected is not None:
            assert stored.sha256 == hashlib.sha256(expected).hexdigest()
    commits = rig.emu.repo_commits("team", "campaigns")
    assert len(commits) == 2 and rig.puts() == 2
    assert "batchgen spring: 3 results (6 files) in campaigns/spring/videos/hero" in commits[0].message
    rows = DeliveryLedger(rig.journal, "t").rows()
    assert {row.state for row in rows.values()} == {DELIVERED}
    assert {row.commit_id for row in rows.values()} == {c.id for c in commits}
    assert all(files[path].sha256 == row.sha256 for path, row in rows.items())
    assert sender.progress() == (10, 10) and sender.not_delivered() == {}


async def test_what_is_delivered_is_never_sent_again_and_a_changed_result_is_a_new_commit(rig: Rig) -> None:
    await deliver(rig.sender(), clips(rig, "hero", 3))
    first = rig.emu.repo_commits("team", "campaigns")
    again = rig.sender()
    await deliver(again, clips(rig, "hero", 3))  # same bytes: a fresh process over the same journal
    assert rig.puts() == 1 and again.progress() == (6, 6) and again.tally.files_sent == 0
    changed = clips(rig, "hero", 3)[:2] + rig.result("videos/hero/2.mp4", b"a new take" * 40)
    third = rig.sender()
    await deliver(third, changed)
    commits = rig.emu.repo_commits("team", "campaigns")
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


@pytest.mark.parametrize("fault", ["upload_cut_rate", "upload_error_after_commit_rate"])
async def test_an_upload_whose_answer_is_lost_is_found_on_the_branch_not_sent_again(
    rig: Rig, fault: str
) -> None:
    """The commit was made but the client never hears of it (a cut, or a 5xx from a gateway): one
    look at the history finds its token; nothing is sent twice."""
    rig.emu.set_faults(**{fault: 1.0})
    sender = rig.sender()
    await deliver(sender, clips(rig, "hero", 2), clips(rig, "story", 1))
    assert rig.puts() == 2 == len(rig.emu.repo_commits("team", "campaigns"))
    assert sorted(rig.sent_files()) == sorted(set(rig.sent_files())) and len(rig.sent_files()) == 6
    rows = DeliveryLedger(rig.journal, "t").rows()
    assert {row.state for row in rows.values()} == {DELIVERED}
    assert {row.commit_id for row in rows.values()} == {
        c.id for c in rig.emu.repo_commits("team", "campaigns")
    }


async def test_a_5xx_before_the_commit_is_sent_again_once_the_branch_shows_it_was_not_made(rig: Rig) -> None:
    puts = 0

    def heal_on_third_put(event: str, detail: Any) -> None:
        nonlocal puts
        if event == "request" and detail.route == UPLOAD:
            puts += 1
            if puts == 3:
                rig.emu.set_faults(server_error_rate=0.0)

    rig.emu.set_faults(server_error_rate=1.0, server_error_routes=(UPLOAD,))
    rig.emu.counters.listeners.append(heal_on_third_put)
    sender = rig.sender()
    await deliver(sender, clips(rig, "hero", 2))
    assert rig.puts() == 3 and len(rig.emu.repo_commits("team", "campaigns")) == 1
    assert sender.progress() == (4, 4)


async def test_a_server_that_commits_after_the_client_gave_up_is_found_by_the_second_look(rig: Rig) -> None:
    """The server reads the upload, stalls past the client's timeout, then commits: the look at once
    finds nothing; the look two request timeouts later finds the commit; it is not sent again."""
    rig.emu.set_faults(
        slow_response_rate=1.0, slow_response_seconds=REQUEST_S * 1.5, slow_response_routes=(UPLOAD,)
    )
    sender = rig.sender()
    await deliver(sender, clips(rig, "hero", 1))
    assert rig.puts() == 1 and len(rig.emu.repo_commits("team", "campaigns")) == 1
    assert sender.progress() == (2, 2)


async def test_a_refused_request_is_narrowed_down_to_the_file_refused(tmp_path: Path) -> None:
    async with run_emulator(EmulatorConfig(time_scale=0.001, max_upload_bytes=4096)) as emu:
        emu.create_repo("team", "campaigns")
        async with OxenClient(emu.base_url, emu.api_key, timeouts=Timeouts(request_s=REQUEST_S)) as client:
            journal = Journal.open(tmp_path)
            rig = Rig(emu, tmp_path, journal, RepoApi(client, TARGET))
            sender = rig.sender()
            items = [i for n in range(3) for i in rig.result(f"videos/a/{n}.mp4", b"s" * 300)]
            items += rig.result("videos/a/big.mp4", os.urandom(6000))
            try:
                await deliver(sender, items)
            finally:
                await sender.aclose()
                journal.close()
    missing = sender.not_delivered()
    assert list(missing) == ["campaigns/spring/videos/a/big.mp4"]
    assert "413" in missing["campaigns/spring/videos/a/big.mp4"]
    assert len(emu.repo_files("team", "campaigns")) == 7 and sender.stopped is None
    assert (
        DeliveryLedger(Journal.open(tmp_path), "t").get("campaigns/spring/videos/a/big.mp4").state == FAILED
    )  # type: ignore[union-attr]


async def test_a_repository_that_turns_read_only_stops_the_delivery(rig: Rig) -> None:
    rig.emu.set_repo_read_only("team", "campaigns")
    sender = rig.sender(max_files=2)
    await deliver(sender, clips(rig, "hero", 3))
    assert rig.puts() == 1 and sender.stopped is not None and "403" in sender.stopped
    assert len(sender.not_delivered()) == 6 and rig.emu.repo_commits("team", "campaigns") == []
    states = {row.state for row in DeliveryLedger(rig.journal, "t").rows().values()}
    assert states == {FAILED}


async def test_a_result_changed_on_disk_since_it_was_verified_is_not_sent(rig: Rig) -> None:
    items = clips(rig, "hero", 2)
    (rig.run_dir / "videos/hero/1.mp4").write_bytes(b"tampered")
    sender = rig.sender()
    await deliver(sender, items)
    assert "changed on disk" in sender.not_delivered()["campaigns/spring/videos/hero/1.mp4"]
    assert "campaigns/spring/videos/hero/1.mp4" not in rig.emu.repo_files("team", "campaigns")


def commit_as_if_sent(rig: Rig, files: dict[str, bytes], token: str) -> str:
    stored = {path: StoredFile(data, "video/mp4") for path, data in files.items()}
    return rig.emu.state.repos.commit(
        "team", "campaigns", "main", stored, message=f"m [batchgen:{token}]", author="a", email="e"
    ).id


async def test_requests_a_killed_process_left_unanswered_are_resolved_from_the_branch(rig: Rig) -> None:
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
    assert rows["campaigns/spring/b.mp4"].state == UNSENT and rig.puts() == 0


async def test_without_the_history_back_to_the_head_the_files_are_hashed_instead(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
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


async def test_sending_is_journaled_before_the_request_arrives(rig: Rig) -> None:
    seen: list[set[str]] = []

    def on_request(event: str, detail: Any) -> None:
        if event == "request" and detail.route == UPLOAD:
            seen.append({row.state for row in DeliveryLedger(rig.journal, "t").rows().values()})

    rig.emu.counters.listeners.append(on_request)
    await deliver(rig.sender(), clips(rig, "hero", 1))
    assert seen == [{SENDING}]


def test_a_journal_without_the_deliveries_table_gets_it(tmp_path: Path) -> None:
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
    from batchgen.delivery import sender as sender_module

    monkeypatch.setattr(sender_module, "CHUNK_FILES", 4)
    sender = rig.sender()
    await deliver(sender, clips(rig, "hero", 5))
    assert [len(c.sent) for c in rig.emu.repo_commits("team", "campaigns")] == [4, 4, 2]
    assert sender.progress() == (10, 10) and sent_twice_in(rig) == []


def sent_twice_in(rig: Rig) -> list[str]:
    files = rig.sent_files()
    return sorted({path for path in files if files.count(path) > 1})
