"""Billed costs end to end: read from the emulator's history after a run, journaled, never a risk."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from batchgen.emulator import Emulator
from batchgen.isotime import iso_utc
from batchgen.run.batch import run_manifest_async
from tests.e2e.conftest import api_args, run_cli
from tests.e2e.test_run import enqueues, results, total_requests, write_manifest


def billed(run_dir: Path) -> dict[str, Any]:
    return {row["generation_id"]: row["billed_cost_usd"] for row in results(run_dir)}


def history_reads(emu: Emulator) -> int:
    return int(emu.counters.snapshot()["requests"].get("GET /api/ai/generations", 0))


async def test_a_run_shows_what_each_generation_was_billed(emulator: Any, tmp_path: Path) -> None:
    """After a run, results carry the history's cost of each row's generation beside the quote, read
    in one page; a rerun with nothing new to read sends no request at all."""
    emu = await emulator()
    manifest = write_manifest(tmp_path, count=5)
    first = await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert first.code == 0, first.stderr
    run_dir = tmp_path / "out" / "e2e"
    got = billed(run_dir)
    assert len(got) == 5 and history_reads(emu) == 1
    for generation_id, cost in got.items():
        assert Decimal(cost) == emu.generation(generation_id).cost
    assert {row["cost_usd"] for row in results(run_dir)} == {"1.120"}
    for row in results(run_dir):  # the sidecar's times read as ISO-8601 UTC too, beside the epoch seconds
        sidecar = json.loads((run_dir / row["output_path"]).with_suffix(".json").read_text())
        for name in ("submitted_at", "completed_at", "downloaded_at"):
            assert sidecar[f"{name}_iso"] == iso_utc(sidecar[name]) and sidecar[f"{name}_iso"].endswith("Z")
        assert sidecar["completed_at_iso"] == row["completed_at"]
    before = total_requests(emu)
    again = await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert again.code == 0, again.stderr
    assert total_requests(emu) == before


async def test_a_history_that_fails_leaves_the_column_empty_and_the_run_whole(
    emulator: Any, tmp_path: Path
) -> None:
    """The history answering 503 every time: the run still exits 0 with every result, the billed
    column is empty, run.log says so in one line; the next run reads it, paying nothing again."""
    emu = await emulator()
    emu.set_faults(server_error_rate=1.0, server_error_routes=("GET /api/ai/generations",))
    manifest = write_manifest(tmp_path, count=3)
    args = api_args(emu, "--request-timeout", "1")
    first = await run_cli("run", str(manifest), "-o", "out", *args, cwd=tmp_path)
    assert first.code == 0, first.stderr
    run_dir = tmp_path / "out" / "e2e"
    assert [row["state"] for row in results(run_dir)] == ["done"] * 3
    assert set(billed(run_dir).values()) == {None}
    log = [json.loads(line) for line in (run_dir / "run.log").read_text().splitlines()]
    said = [line for line in log if "billed costs" in line["message"]]
    assert len(said) == 1 and said[0]["level"] == "warning", said
    assert "next run tries again" in said[0]["message"]

    emu.set_faults(server_error_rate=0.0)
    again = await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert again.code == 0, again.stderr
    assert enqueues(emu) == 3
    assert all(Decimal(cost) == emu.generation(g).cost for g, cost in billed(run_dir).items())


async def test_a_stop_while_the_history_is_read_ends_the_run_at_once(emulator: Any, tmp_path: Path) -> None:
    """A Ctrl-C once every result is in and the history is being read (it asks for a 30 s pause): the
    run returns at once, every result kept, the billed costs left for the next run."""
    emu = await emulator()
    emu.set_faults(  # the history answers 429 "retry after 30 s", every time
        rate_limit_rate=1.0, rate_limit_retry_after_seconds=30, rate_limit_routes=("GET /api/ai/generations",)
    )
    manifest = write_manifest(tmp_path, count=3)
    stop = asyncio.Event()
    emu.counters.listeners.append(
        lambda event, entry: (
            stop.set() if event == "request" and entry.route == "GET /api/ai/generations" else None
        )
    )
    async with asyncio.timeout(20):
        result = await run_manifest_async(
            manifest, api_base=emu.base_url, api_key=emu.api_key, output_dir=tmp_path / "out", stop=stop
        )
    assert result.outcome.counts == {"done": 3} and result.outcome.stop_reason is None
    assert stop.is_set() and history_reads(emu) == 1
    assert set(billed(result.run_dir).values()) == {None}
