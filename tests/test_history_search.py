"""Finding our own rows on an account with thousands of older ones: the paginated history, any order."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from batchgen.client.api import OxenClient
from batchgen.client.history import HISTORY_PAGE_SIZE
from batchgen.client.reconcile import Scope
from batchgen.emulator import Emulator, EmulatorConfig, LatencyConfig, run_emulator
from batchgen.errors import HistoryUnreadable

KLING = "kling-video-o3-pro-reference-to-video"
BODY = {"model": KLING, "prompt": "Same shot", "duration": 5}
OLD_ROWS = 2 * HISTORY_PAGE_SIZE + 500  # three pages of history
SLOW = LatencyConfig(video_render_median_seconds=86_400, latency_sigma=0.0)

Start = Callable[..., Awaitable[Emulator]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """`await start(**config)`: an emulator on 127.0.0.1, stopped after the test."""
    stops = []

    async def factory(**config: Any) -> Emulator:
        cm = run_emulator(EmulatorConfig(time_scale=0.001, **config))
        stops.append(cm)
        return await cm.__aenter__()

    yield factory
    for cm in reversed(stops):
        await cm.__aexit__(None, None, None)


def history_requests(emu: Emulator) -> int:
    return int(emu.counters.snapshot()["requests"].get("GET /api/ai/generations", 0))


@pytest.mark.parametrize("newest_first", [True, False])
async def test_only_rows_since_the_submission_come_back_in_few_pages(
    start: Start, newest_first: bool
) -> None:
    """Thousands of identical older rows are skipped by time, whichever order the listing pages in,
    reading one page (newest first) or two (oldest first: the first, then the last) of three."""
    emu = await start(history_newest_first=newest_first, latency=SLOW)
    emu.seed_history(OLD_ROWS, BODY, age_seconds=3600)
    async with OxenClient(emu.base_url, emu.api_key) as client:
        since = time.time() - 60
        fresh = [(await client.enqueue(BODY))[0] for _ in range(3)]
        rows = await client.history_since(model=KLING, namespace=None, since=since)
    assert sorted(r["generation_id"] for r in rows) == sorted(fresh)
    assert history_requests(emu) == (1 if newest_first else 2)


async def test_org_rows_are_found_under_their_namespace_only(start: Start) -> None:
    """Rows billed to an organisation are invisible to an unfiltered search and found with namespace=."""
    emu = await start(latency=SLOW)
    async with OxenClient(emu.base_url, emu.api_key) as client:
        since = time.time() - 60
        (org,) = await client.enqueue({**BODY, "target_namespace": "acme-org"})
        assert await client.find_rows([Scope(None, KLING)], since) == []
        found = await client.find_rows([Scope("acme-org", KLING)], since)
    assert [r["generation_id"] for r in found] == [org]


async def test_a_capped_lean_list_does_not_hide_active_rows(start: Start) -> None:
    """The lean list answers only its oldest rows; the history still yields every row since the submission."""
    emu = await start(queue_list_cap=1, latency=SLOW)
    async with OxenClient(emu.base_url, emu.api_key) as client:
        since = time.time() - 60
        ids = [(await client.enqueue(BODY))[0] for _ in range(4)]
        assert len(await client.list_queue(model=KLING)) == 1
        found = await client.find_rows([Scope(None, KLING)], since)
    assert sorted(r["generation_id"] for r in found) == sorted(ids)
    assert {r["status"] for r in found} <= {"queued", "processing"}


async def test_an_unreadable_history_still_hands_over_the_active_rows_it_found(start: Start) -> None:
    """A history that ignores `page` (oldest first) cannot be read back to the submission: find_rows
    says so, and hands over what it found (the lean list's active rows), which a reconcile may use
    when they account for every submission it looks for."""
    emu = await start(history_ignores_page=True, history_newest_first=False, latency=SLOW)
    emu.seed_history(OLD_ROWS, BODY, age_seconds=3600)
    async with OxenClient(emu.base_url, emu.api_key) as client:
        since = time.time() - 60
        fresh = [(await client.enqueue(BODY))[0] for _ in range(2)]
        with pytest.raises(HistoryUnreadable, match="ignores `page`") as caught:
            await client.find_rows([Scope(None, KLING)], since)
    assert sorted(r["generation_id"] for r in caught.value.rows) == sorted(fresh)
