"""Guarantee 2: an enqueue whose answer is lost is reconciled, never blindly sent again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batchgen.emulator import FaultConfig
from tests.faults.conftest import Harness, assert_complete, replica_manifest, write_manifest

JOBS = 100


@pytest.mark.parametrize("shape", ["distinct", "replicas"])
async def test_10pct_of_enqueue_answers_cut_0_duplicates_100_of_100_done(
    start_emulator: Any, harness: Harness, tmp_path: Path, shape: str
) -> None:
    """The emulator creates the generation, then cuts the connection (10% of POSTs): 100/100 done,
    exactly 100 generations. `replicas`: 5 prompts x 20 replicas sending identical requests."""
    emu = await start_emulator(seed=5, account_concurrency=16, faults=FaultConfig(enqueue_cut_rate=0.1))
    if shape == "distinct":
        manifest = write_manifest(tmp_path, count=JOBS)
    else:
        manifest = replica_manifest(tmp_path, prompts=5, replicas=JOBS // 5)
    result = await harness.run(emu, manifest, "-j", "16")
    assert result.code == 0, result.stderr
    cuts = emu.counters.faults["enqueue_cut"]
    assert cuts >= 5  # the fault really happened, about 10% of the time
    assert_complete(tmp_path / "out" / "e2e", emu, JOBS)  # exactly 100 generations created
    print(f"FIGURE cut[{shape}]: {cuts} answers cut, {emu.counters.generations_enqueued} generations")
