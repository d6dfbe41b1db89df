"""report.html and results.* end to end: written at the end of every run, and by `batchgen report
RUN_DIR` from the run directory alone (a killed run too), offline, showing only the current plan."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from batchgen.emulator import Emulator
from tests.e2e.conftest import api_args, clean_env, run_cli
from tests.e2e.test_run import kill_after_enqueues, results, total_requests, write_manifest
from tests.test_report_html import data_of


def cards_of(run_dir: Path) -> list[dict[str, Any]]:
    cards: list[dict[str, Any]] = data_of((run_dir / "report.html").read_text(encoding="utf-8"))["cards"]
    return cards


async def test_every_run_ends_with_a_report_even_when_interrupted(emulator: Any, tmp_path: Path) -> None:
    """A Ctrl-C drains and exits 1; report.html is there with a card per planned job, in the state the
    journal has, and the run says where it is."""
    emu = await emulator(time_scale=0.01)
    manifest = write_manifest(tmp_path, count=6)

    two_answered = asyncio.Event()
    emu.counters.listeners.append(
        lambda event, _: (
            two_answered.set()
            if event == "enqueue_answered" and emu.counters.generations_enqueued == 2
            else None
        )
    )

    async def interrupt(proc: asyncio.subprocess.Process) -> None:
        await two_answered.wait()
        proc.send_signal(signal.SIGINT)

    ran = await run_cli(
        "run", str(manifest), "-o", "out", *api_args(emu, "-j", "2"), cwd=tmp_path, on_start=interrupt
    )
    run_dir = tmp_path / "out" / "e2e"
    assert ran.code == 1, ran.stderr
    assert f"batchgen: report: {Path('out/e2e/report.html')}" in ran.stderr
    rows = results(run_dir)
    cards = cards_of(run_dir)
    assert [c["key"] for c in cards] == [r["key"] for r in rows]
    assert [c["state"] for c in cards] == [r["state"] for r in rows]
    assert "pending" in {r["state"] for r in rows} and "done" in {r["state"] for r in rows}
    for card in cards:
        assert (card["href"] is not None) == (card["state"] == "done")
        if card["href"]:
            assert (run_dir / card["path"]).is_file()


async def test_report_after_kill_9_reads_the_journal_and_nothing_else(emulator: Any, tmp_path: Path) -> None:
    """After a kill -9 (no results files at all), `batchgen report` writes results.* and report.html
    from the journal, without a key and without a single request to the API."""
    emu = await emulator(time_scale=1.0)  # renders take minutes: they are surely in flight
    manifest = write_manifest(tmp_path, count=4)
    killed = await run_cli(
        "run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path, on_start=kill_after_enqueues(emu, 4)
    )
    assert killed.code == -signal.SIGKILL
    run_dir = tmp_path / "out" / "e2e"
    assert not (run_dir / "results.jsonl").exists() and not (run_dir / "report.html").exists()

    before = total_requests(emu)
    made = await run_cli("report", "out/e2e", cwd=tmp_path, env=clean_env(OXEN_API_BASE=emu.base_url))
    assert made.code == 0, made.stderr
    assert made.stdout == f"{Path('out/e2e/report.html')}\n"
    assert total_requests(emu) == before
    rows = results(run_dir)
    assert len(rows) == 4
    assert {r["state"] for r in rows} <= {"submitting", "queued", "processing"}
    # claims not committed when the kill came stay `submitting` (the next run reconciles them)
    assert all((r["generation_id"] is None) == (r["state"] == "submitting") for r in rows)
    assert all(r["submitted_at"] and r["submitted_at"].endswith("Z") for r in rows)
    assert [(c["key"], c["state"], c["href"]) for c in cards_of(run_dir)] == [
        (r["key"], r["state"], None) for r in rows
    ]
    assert (run_dir / "results.csv").read_text(encoding="utf-8").startswith("index,key,name,")


async def test_report_shows_only_the_current_plan_never_superseded_results(
    emulator: Any, tmp_path: Path
) -> None:
    """A second manifest of the same name takes the first one's paths: the old results move to
    superseded/; the report has no card for them, and results.* list them after the plan's rows,
    `planned` false, at their superseded/ paths (paid for, so they count in the spend)."""
    emu = await emulator()
    first = write_manifest(tmp_path, count=3, prompt="First take {n}")
    assert (await run_cli("run", str(first), "-o", "out", *api_args(emu), cwd=tmp_path)).code == 0
    run_dir = tmp_path / "out" / "e2e"
    old_keys = {r["key"] for r in results(run_dir)}
    second = write_manifest(tmp_path, count=3, prompt="Second take {n}")
    ran = await run_cli("run", str(second), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert ran.code == 0, ran.stderr
    assert len(list((run_dir / "superseded").rglob("*.mp4"))) == 3

    for made_by in ("run", "report"):
        if made_by == "report":
            assert (await run_cli("report", str(run_dir), cwd=tmp_path)).code == 0
        rows, cards = results(run_dir), cards_of(run_dir)
        assert len(rows) == len(cards) == 3 and not old_keys & {r["key"] for r in rows}
        earlier = results(run_dir, earlier=True)[3:]
        assert {r["key"] for r in earlier} == old_keys and not any(r["planned"] for r in earlier)
        assert all((run_dir / r["output_path"]).is_file() and r["state"] == "superseded" for r in earlier)
        assert [c["key"] for c in cards] == [r["key"] for r in rows]
        assert all(c["prompt"].startswith("Second take") for c in cards)
        assert all(c["path"].startswith("videos/") and "superseded" not in c["href"] for c in cards)


async def test_report_open_hands_the_file_to_the_browser(emulator: Any, tmp_path: Path) -> None:
    """`--open` gives the report's file:// URL to the browser named by $BROWSER."""
    emu: Emulator = await emulator()
    manifest = write_manifest(tmp_path, count=1)
    assert (await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)).code == 0
    opener = tmp_path / "opener.py"
    opened = tmp_path / "opened.txt"
    opener.write_text(f"import sys; open({str(opened)!r}, 'w').write(sys.argv[1])\n")
    env = clean_env(BROWSER=f"{sys.executable} {opener} %s")
    made = await run_cli("report", "out/e2e", "--open", cwd=tmp_path, env=env)
    assert made.code == 0, made.stderr
    assert opened.read_text() == (tmp_path / "out" / "e2e" / "report.html").resolve().as_uri()


async def test_report_refuses_what_is_not_a_run_directory(tmp_path: Path) -> None:
    """No plan.json: exit 2, one line naming the directory, nothing written."""
    (tmp_path / "empty").mkdir()
    made = await run_cli("report", "empty", cwd=tmp_path)
    assert made.code == 2
    assert made.stderr == "batchgen: error: empty is not a batchgen run directory (no plan.json)\n"
    assert list((tmp_path / "empty").iterdir()) == []


async def test_report_help_shows_examples(tmp_path: Path) -> None:
    """`batchgen report --help` ends with examples of the command."""
    shown = await run_cli("report", "--help", cwd=tmp_path)
    assert shown.code == 0
    assert "examples:\n  batchgen report outputs/" in shown.stdout and "--open" in shown.stdout
