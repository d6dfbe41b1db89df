"""The SQLite journal and the run-directory lock."""

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from batchgen.errors import RunLocked, UsageError
from batchgen.journal.store import Journal
from batchgen.rundir.lock import RunLock
from batchgen.states import IllegalTransition, JobState


def journal_with_jobs(tmp_path: Path, n: int = 2) -> Journal:
    journal = Journal.open(tmp_path)
    journal.add_jobs((f"k{i}", i, "job", "m", f"job-{i}.mp4") for i in range(n))
    return journal


def test_added_jobs_start_pending_and_are_not_added_twice(tmp_path: Path) -> None:
    """add_jobs inserts only new keys, so a rerun keeps every job's progress."""
    journal = journal_with_jobs(tmp_path)
    journal.transition("k0", JobState.SUBMITTING)
    assert journal.add_jobs([("k0", 0, "job", "m", "x.mp4"), ("k9", 9, "job", "m", "y.mp4")]) == 1
    assert journal.get("k0").state is JobState.SUBMITTING
    assert journal.get("k9").state is JobState.PENDING


def test_transitions_survive_reopening_and_are_logged(tmp_path: Path) -> None:
    """Every committed transition is on disk: a new Journal on the same file sees it."""
    journal = journal_with_jobs(tmp_path)
    journal.transition("k0", JobState.SUBMITTING, attempts=1, sent_request='{"model":"m"}')
    journal.claim_generation("k0", "gen-1", 1, JobState.QUEUED)
    journal.close()
    again = Journal.open(tmp_path)
    record = again.get("k0")
    assert (record.state, record.generation_id, record.attempts) == (JobState.QUEUED, "gen-1", 1)
    assert record.sent_body() == {"model": "m"}
    assert again.claimed_generation_ids() == {"gen-1"}
    logged = again.read_rows("SELECT from_state, to_state FROM transitions WHERE job_key='k0' ORDER BY seq")
    assert logged == [("pending", "submitting"), ("submitting", "queued")]


def test_illegal_transition_raises_and_changes_nothing(tmp_path: Path) -> None:
    """A forbidden state change is a bug: it raises and the row stays as it was."""
    journal = journal_with_jobs(tmp_path)
    with pytest.raises(IllegalTransition):
        journal.transition("k0", JobState.DONE)
    assert journal.get("k0").state is JobState.PENDING
    assert Journal.open(tmp_path).get("k0").state is JobState.PENDING


def test_unknown_fields_are_refused(tmp_path: Path) -> None:
    """Only journal columns can be changed, and never the key or plan fields."""
    journal = journal_with_jobs(tmp_path)
    with pytest.raises(TypeError, match="output_path"):
        journal.transition("k0", JobState.SUBMITTING, output_path="../x")


def test_asset_urls_are_remembered(tmp_path: Path) -> None:
    """An uploaded reference image's URL is journaled (the `assets` table), and survives reopening."""
    journal = Journal.open(tmp_path)
    journal.set_asset_url("abc", "https://x/a.png")
    assert Journal.open(tmp_path).read_rows("SELECT sha256, url FROM assets") == [("abc", "https://x/a.png")]


def test_open_existing_refuses_a_directory_without_journal(tmp_path: Path) -> None:
    """`status` on a directory that is not a run directory is a clear error."""
    with pytest.raises(UsageError, match="not a batchgen run directory"):
        Journal.open_existing(tmp_path)


def test_a_second_lock_holder_is_refused_until_release(tmp_path: Path) -> None:
    """Two runners on one run directory: the second is refused with the holder's pid."""
    with RunLock(tmp_path):
        script = (
            f"import sys; from pathlib import Path; from batchgen.rundir.lock import RunLock\n"
            f"from batchgen.errors import RunLocked\n"
            f"try:\n    RunLock(Path({str(tmp_path)!r})).acquire()\nexcept RunLocked as e:\n"
            f"    print(e); sys.exit(3)\n"
        )
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
        assert result.returncode == 3
        assert "in use by batchgen" in result.stdout
    lock = RunLock(tmp_path)
    lock.acquire()  # released: free again
    lock.release()


def test_lock_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    """flock locks per open file, so a second RunLock in the same process is refused as well."""
    with RunLock(tmp_path), pytest.raises(RunLocked):
        RunLock(tmp_path).acquire()


def test_the_journals_sandbox_marker_is_the_one_runs_record() -> None:
    """The per-generation `api` a sandbox run writes is what lets the journal forget its generations."""
    from batchgen.config import SANDBOX_IDENTITY, RunOptions
    from batchgen.states import SANDBOX_IDENTITY as JOURNALED

    assert (
        JOURNALED == SANDBOX_IDENTITY == RunOptions(api_base="http://127.0.0.1:1", sandbox=True).api_identity
    )


def test_a_reader_opens_an_old_journal_without_changing_a_byte_of_it(tmp_path: Path) -> None:
    """A journal of the first format (no api, planned or server_submitted_at column, no billing table)
    read with read_only=True: its jobs read with the defaults, its billing is empty, and the file is
    byte for byte as it was, with no -wal or -shm beside it."""
    conn = sqlite3.connect(tmp_path / "state.sqlite")
    conn.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE jobs (key TEXT PRIMARY KEY, idx INTEGER NOT NULL, name TEXT NOT NULL, model TEXT NOT "
        "NULL, output_path TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
        "generation_id TEXT, sent_request TEXT, submitted_at REAL, started_at REAL, completed_at REAL, "
        "downloaded_at REAL, sha256 TEXT, size INTEGER, mtime_ns INTEGER, error TEXT, updated_at REAL NOT NULL);"
        "CREATE TABLE generations (generation_id TEXT PRIMARY KEY, job_key TEXT NOT NULL, attempt INTEGER "
        "NOT NULL, created_at REAL NOT NULL);"
        "INSERT INTO jobs (key, idx, name, model, output_path, state, updated_at) "
        "VALUES ('k0', 0, 'job', 'm', 'a.mp4', 'done', 1.0);"
    )
    conn.close()
    before = (tmp_path / "state.sqlite").read_bytes()
    journal = Journal.open_existing(tmp_path, read_only=True)
    record = journal.get("k0")
    assert (record.state, record.planned, record.api, record.server_submitted_at) == (
        "done",
        True,
        None,
        None,
    )
    assert journal.billed_costs() == {}
    journal.close()
    assert (tmp_path / "state.sqlite").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.sqlite"]


@pytest.mark.parametrize("read_only", [True, False])
def test_a_missing_or_empty_journal_is_refused_never_created(tmp_path: Path, read_only: bool) -> None:
    """open_existing on a folder without a journal, or with a 0-byte one: a UsageError saying so, and
    nothing written (the 0-byte file stays 0 bytes)."""
    with pytest.raises(UsageError, match="not a batchgen run directory"):
        Journal.open_existing(tmp_path, read_only=read_only)
    (tmp_path / "state.sqlite").write_bytes(b"")
    with pytest.raises(UsageError, match=r"is empty \(0 bytes\)"):
        Journal.open_existing(tmp_path, read_only=read_only)
    assert (tmp_path / "state.sqlite").stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.sqlite"]
