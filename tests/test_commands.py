"""The library's commands (`batchgen.commands`) and the run-directory session they open: records out, the
CLI printing them unchanged, errors worded for Python with the CLI's flags beside them, and nothing
written into a folder that is not a run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batchgen import commands
from batchgen.cli import main
from batchgen.errors import RunLocked, UsageError
from batchgen.journal.session import Session
from batchgen.journal.store import Journal
from batchgen.states import JobState


def run_dir_with(tmp_path: Path, *, in_flight_api: str | None = None) -> Path:
    """A run directory of three jobs: one done, one pending, and one queued at `in_flight_api` (when
    given: its generations were made by that API, which the journal records as the run's)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    journal = Journal.open(run_dir)
    journal.add_jobs((f"{i:064x}", i, f"clip{i}", "m", f"clip/clip-{i}.mp4") for i in (1, 2, 3))
    journal.transition(f"{1:064x}", JobState.SUBMITTING)
    journal.claim_generation(f"{1:064x}", "gen-1", 1, JobState.QUEUED, api=in_flight_api)
    journal.transition(f"{1:064x}", JobState.SUCCEEDED)
    journal.transition(f"{1:064x}", JobState.DONE, sha256="ab" * 32)
    if in_flight_api is not None:
        journal.transition(f"{3:064x}", JobState.SUBMITTING)
        journal.claim_generation(f"{3:064x}", "gen-3", 1, JobState.QUEUED, api=in_flight_api)
        journal.set_meta("api", in_flight_api)
    journal.close()
    return run_dir


def test_status_json_prints_the_record_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`run_status` returns each job as a dict; `batchgen status --json` prints exactly those, a line
    each, and the exit code says what `complete` says (1: not every planned job is done)."""
    run_dir = run_dir_with(tmp_path)
    status = commands.run_status(run_dir)
    assert [job["state"] for job in status.jobs] == ["done", "pending", "pending"]
    assert not status.complete and status.spend.generations == 1
    assert main(["status", str(run_dir), "--json"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == json.loads(json.dumps(status.jobs))
    assert main(["status", str(run_dir)]) == 1


def test_cancel_with_nothing_in_flight_prints_its_record_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing in flight: `cancel_run` needs no key and says so with empty counts; `cancel --json` is
    that record, one object."""
    monkeypatch.delenv("OXEN_API_KEY", raising=False)
    run_dir = run_dir_with(tmp_path)
    assert commands.cancel_run(run_dir).counts == {}
    assert main(["cancel", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "run_dir": str(run_dir),
        "counts": {},
        "live_pid": None,
        "still_running": False,
    }


@pytest.mark.parametrize("command", ["cancel", "deliver", "unverified"])
def test_a_plain_folder_is_refused_and_left_as_it_was(command: str, tmp_path: Path) -> None:
    """A folder without a journal is not a run directory: a UsageError, and no `.lock`, turn file or
    journal left in it."""
    plain = tmp_path / "plain"
    plain.mkdir()
    call: dict[str, Any] = {
        "cancel": lambda: commands.cancel_run(plain),
        "deliver": lambda: commands.deliver_run(plain, api_key="k"),
        "unverified": lambda: commands.settle_unverified(plain, accept=True, only=["name=x"]),
    }
    with pytest.raises(UsageError, match="not a batchgen run directory"):
        call[command]()
    assert list(plain.iterdir()) == []


def test_library_errors_are_worded_for_python_and_carry_the_flags_for_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No key, no delivery target: the library's message names its arguments (`api_key`, `to=`), never a
    flag; `exc.cli` says it with the flags, and that is what `batchgen deliver` prints."""
    monkeypatch.delenv("OXEN_API_KEY", raising=False)
    run_dir = run_dir_with(tmp_path)
    with pytest.raises(UsageError) as no_key:
        commands.deliver_run(run_dir)
    assert "api_key" in str(no_key.value) and "--" not in str(no_key.value)
    assert no_key.value.cli is not None and "--api-key" in no_key.value.cli
    with pytest.raises(UsageError) as no_target:
        commands.deliver_run(run_dir, api_key="k")
    assert "to='NAMESPACE/NAME" in str(no_target.value) and "--" not in str(no_target.value)
    monkeypatch.setenv("OXEN_API_KEY", "k")
    assert main(["deliver", str(run_dir)]) == 2
    assert "pass --to NAMESPACE/NAME[@BRANCH][:PATH]" in capsys.readouterr().err


class _NoLookups:
    """A client the API check must not need: the journal already says which API made the generation."""

    async def get_generation(self, generation_id: str) -> Any:
        raise AssertionError(f"looked up {generation_id}")


async def test_the_session_refuses_results_of_another_api(tmp_path: Path) -> None:
    """A run directory holding the sandbox's generations, opened for a real API: refused (in Python's
    words, `sandbox=True`; in the CLI's, `--output-dir` and `--sandbox`), and its journal unchanged."""
    run_dir = run_dir_with(tmp_path, in_flight_api="sandbox")
    with Session.writing(run_dir) as session, pytest.raises(UsageError) as mixed:
        await session.check_api("https://hub.oxen.ai", _NoLookups())
    assert "holds results from sandbox" in str(mixed.value) and "sandbox=True" in str(mixed.value)
    assert "--" not in str(mixed.value)
    assert mixed.value.cli is not None and "--output-dir" in mixed.value.cli
    with Session.reading(run_dir) as reader:
        assert reader.api == "sandbox" and reader.sandbox


def test_a_reader_opens_a_locked_run_directory_and_a_second_writer_is_refused(tmp_path: Path) -> None:
    """While a writer holds the lock, a reader (status, ls, report) opens the journal read-only without
    waiting, and a second writer is refused with RunLocked."""
    run_dir = run_dir_with(tmp_path)
    with Session.writing(run_dir) as writer:
        writer.journal.transition(f"{2:064x}", JobState.SUBMITTING)
        writer.journal.flush()
        with Session.reading(run_dir) as reader:
            assert reader.journal.get(f"{2:064x}").state is JobState.SUBMITTING
        with pytest.raises(RunLocked), Session.writing(run_dir):
            pass


@pytest.mark.parametrize(
    ("arguments", "python", "flags"),
    [
        ({"budget_usd": "x"}, "budget_usd must be an amount in USD", "--budget must be an amount in USD"),
        ({"upload_repo": "justone"}, "upload_repo: upload repository must be", "--upload-repo: upload"),
        ({"deliver": "meadow/.."}, "deliver: the repository 'meadow/..'", "--deliver: the repository"),
        ({"sandbox": False}, "no API key: pass api_key", "no API key: set OXEN_API_KEY (or pass --api-key)"),
    ],
)
def test_run_manifest_errors_name_its_arguments_and_carry_the_flags(
    arguments: dict[str, Any], python: str, flags: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_manifest's bad arguments are said with its own names (`budget_usd`, `upload_repo`, `deliver`,
    `api_key`), never a flag; `exc.cli` says the same with the command line's flags; nothing is written."""
    import batchgen

    monkeypatch.delenv("OXEN_API_KEY", raising=False)
    demo = Path(__file__).resolve().parents[1] / "jobs" / "demo.yaml"
    with pytest.raises(UsageError) as refused:
        batchgen.run_manifest(demo, **{"sandbox": True, "output_dir": tmp_path / "out", **arguments})
    assert python in str(refused.value) and "--" not in str(refused.value)
    assert refused.value.cli is not None and flags in refused.value.cli
    assert not (tmp_path / "out").exists()
