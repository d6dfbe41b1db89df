"""Guarantee 64: `batchgen ls` over damaged run directories: each is one line saying why, the others are
listed as ever, and nothing blocks (a FIFO is never opened for a blocking read, no lock is waited for)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from tests.faults.conftest import Harness, write_manifest


def damage(run_dir: Path, how: str) -> None:
    if how == "updated_at":
        conn = sqlite3.connect(run_dir / "state.sqlite")
        with conn:
            conn.execute("UPDATE jobs SET updated_at='yesterday' WHERE rowid=1")
        conn.close()
    elif how == "absurd-pid":
        (run_dir / ".lock").write_text("9" * 40)
    elif how == "fifo-lock":
        (run_dir / ".lock").unlink(missing_ok=True)
        os.mkfifo(run_dir / ".lock")
    elif how == "dir-lock":
        (run_dir / ".lock").unlink(missing_ok=True)
        (run_dir / ".lock").mkdir()
    elif how == "fifo-plan":
        (run_dir / "plan.json").unlink()
        os.mkfifo(run_dir / "plan.json")
    elif how == "garbage-journal":
        (run_dir / "state.sqlite").write_bytes(b"this is not a database" * 100)
    else:
        raise AssertionError(how)


DAMAGES = ("updated_at", "absurd-pid", "fifo-lock", "dir-lock", "fifo-plan", "garbage-journal")
WHY = {
    "updated_at": "updated_at holds 'yesterday', not a time",
    "fifo-lock": ".lock is not a regular file",
    "dir-lock": ".lock is not a regular file",
    "fifo-plan": "plan.json is not a regular file",
    "garbage-journal": "cannot read the journal",
}


async def test_ls_over_damaged_run_directories_lists_each_as_one_line_and_the_rest_as_ever(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """Six copies of a finished run, each damaged one way (a non-numeric updated_at, a `.lock` holding
    a 40-digit pid, a FIFO or a directory named `.lock`, a FIFO named plan.json, a journal that is not
    SQLite), beside two healthy ones: `ls` exits 0 within seconds; each damaged one is one line
    "RUN: unreadable (why)" (the absurd pid is no damage: no process holds the lock); both healthy
    runs are listed with their counts; `ls --json` gives one object per run directory (before the
    fix: a traceback, or a hang on the FIFO, that hid every other run)."""
    emu = await start_emulator(seed=21)
    assert (await harness.run(emu, write_manifest(tmp_path, count=2))).code == 0
    assert (await harness.run(emu, write_manifest(tmp_path, name="zz-healthy", count=1))).code == 0
    out = tmp_path / "out"
    for how in DAMAGES:
        shutil.copytree(out / "e2e", out / f"e2e-{how}")
        damage(out / f"e2e-{how}", how)
    listed = await harness.cli("ls", "out", limit_s=20)
    assert listed.code == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    lines = listed.stdout.splitlines()
    for how in DAMAGES:
        mine = [line for line in lines if line.startswith(f"out/e2e-{how}")]
        assert len(mine) == 1, (how, lines)
        if how in WHY:
            assert mine[0].startswith(f"out/e2e-{how}: unreadable (") and WHY[how] in mine[0], mine[0]
        else:  # a pid nobody holds the lock with is no reason not to list the run
            assert "done 2" in mine[0], mine[0]
    healthy = [line for line in lines if line.startswith(("out/e2e ", "out/zz-healthy "))]
    assert len(healthy) == 2 and "done 2" in healthy[0] and "done 1" in healthy[1]
    as_json = await harness.cli("ls", "out", "--json", limit_s=20)
    assert as_json.code == 0, as_json.stderr
    runs = {Path(obj["run_dir"]).name: obj for obj in map(json.loads, as_json.stdout.splitlines())}
    assert set(runs) == {"e2e", "zz-healthy", *(f"e2e-{how}" for how in DAMAGES)}
    assert {name for name, obj in runs.items() if obj["error"]} == {f"e2e-{how}" for how in WHY}
