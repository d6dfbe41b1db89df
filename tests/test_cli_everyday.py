"""The command line's manners: an example in every --help, a quiet stop when stdout's reader goes away,
and a clear sentence on a platform batchgen does not support."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchgen.cli import build_parser, main
from batchgen.errors import StorageError
from batchgen.journal.store import Journal
from batchgen.rundir.lock import LOCK_NAME, RunLock, lock_holder

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["run", "plan", "status", "cancel", "unverified", "ls", "deliver", "report", "schema", "emulator"]


def test_every_subcommand_is_listed_here() -> None:
    """So the --help test below cannot miss a command added later."""
    parser = build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices
    assert choices is not None and sorted(choices) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_help_shows_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`batchgen COMMAND --help` ends with an example of the command."""
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    example = out[out.rindex("example") :]
    assert example.startswith(("example:\n", "examples:\n"))
    assert f"  batchgen {command} " in example


def many_jobs(run_dir: Path, count: int) -> None:
    """A run directory whose journal holds `count` jobs (more than a pipe buffers)."""
    run_dir.mkdir()
    journal = Journal.open(run_dir)
    journal.add_jobs((f"{i:064x}", i, "clip", "m", f"clip/clip-{i}.mp4") for i in range(count))
    journal.close()


def first_line_then_close(*args: str, cwd: Path) -> tuple[int, str, str]:
    """Run `batchgen ARGS`, read one line of stdout and close it, as `| head -1` does."""
    with subprocess.Popen(
        [sys.executable, "-m", "batchgen", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "OXEN_API_KEY"},
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline().decode()
        proc.stdout.close()
        err = proc.stderr.read().decode()
        return proc.wait(timeout=60), line, err


@pytest.mark.parametrize("command", ["status", "ls", "plan"])
def test_a_reader_that_goes_away_stops_it_quietly_with_141(command: str, tmp_path: Path) -> None:
    """`batchgen status --json | head -1` and friends: the first line, then exit 141 (as a shell reports
    a command a closed pipe stopped) and not a word on stderr, no BrokenPipeError traceback."""
    if command == "plan":
        manifest = tmp_path / "m.yaml"
        manifest.write_text(
            "version: 1\nname: big\nmodel: kling-video-o3-pro-reference-to-video\n"
            "jobs: [{name: a, prompt: 'clip {n}', duration: 5, matrix: {n: "
            + str(list(range(3000)))
            + "}}]\n"
        )
        args = ["plan", str(manifest), "--json"]
    else:
        many_jobs(tmp_path / "run", 4000)
        if command == "ls":  # many run directories: more than a pipe holds
            for n in range(300):
                many_jobs(tmp_path / f"run{n}", 1)
        args = ["status", "run", "--json"] if command == "status" else ["ls", ".", "--json"]
    code, line, err = first_line_then_close(*args, cwd=tmp_path)
    assert line.startswith("{")
    assert (code, err.replace("batchgen: kling-video-o3-pro-reference-to-video: validated", "")) == (
        141,
        "",
    ) or (code == 141 and "Traceback" not in err and "BrokenPipe" not in err)


def test_import_on_a_platform_that_is_not_posix_fails_with_the_sentence() -> None:
    """Elsewhere than POSIX, `import batchgen` says what batchgen needs, instead of a missing fcntl."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; os.name = 'nt'; import batchgen"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 1
    assert done.stderr.rstrip().endswith(
        "RuntimeError: batchgen supports POSIX systems (Linux, macOS) only: it relies on fcntl file locks "
        "and POSIX signal handlers."
    )
    assert "ImportError" not in done.stderr and "fcntl'" not in done.stderr


def test_lock_holder_names_the_live_process_and_nobody_else(tmp_path: Path) -> None:
    """No lock file, a pid of a process that is gone, a living pid that holds nothing: None. A process
    holding the lock: its pid. Asking never creates the file and never keeps the lock from its owner."""
    assert lock_holder(tmp_path) is None and not (tmp_path / LOCK_NAME).exists()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / LOCK_NAME).write_text(str(gone.pid))
    assert lock_holder(tmp_path) is None
    (tmp_path / LOCK_NAME).write_text(str(os.getpid()))  # alive, but holding no lock
    assert lock_holder(tmp_path) is None
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from batchgen.rundir.lock import RunLock\n"
            f"lock = RunLock(Path({str(tmp_path)!r})); lock.acquire(); print('held', flush=True)\n"
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        try:
            assert holder.stdout.readline() == b"held\n"
            assert lock_holder(tmp_path) == holder.pid
            assert lock_holder(tmp_path) == holder.pid  # asking twice changes nothing
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)
    assert lock_holder(tmp_path) is None
    with RunLock(tmp_path):  # free again: taken at once
        assert lock_holder(tmp_path) == os.getpid()


def test_a_lock_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO or a directory named `.lock`: `lock_holder` and `RunLock` say so (StorageError) at once,
    instead of blocking on the FIFO or writing a pid into something that is not batchgen's."""
    fifo, folder = tmp_path / "fifo", tmp_path / "folder"
    for run_dir in (fifo, folder):
        run_dir.mkdir()
    os.mkfifo(fifo / LOCK_NAME)
    (folder / LOCK_NAME).mkdir()
    for run_dir in (fifo, folder):
        with pytest.raises(StorageError, match="is not a regular file"):
            lock_holder(run_dir)
    with pytest.raises(StorageError, match="is not a regular file"):
        RunLock(fifo).acquire()


def test_a_lock_holding_a_pid_that_is_no_pid_is_free(tmp_path: Path) -> None:
    """A `.lock` holding 40 digits (no pid is that long) held by nobody: no holder, no OverflowError."""
    (tmp_path / LOCK_NAME).write_text("9" * 40)
    assert lock_holder(tmp_path) is None
