"""Accounts as teams have them: older rows, org namespaces, a capped lean list, echoed defaults."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable

import pytest

from batchgen.emulator import Emulator

from .support import KLING, SLOW_VIDEO, Api, image, video

MakeApi = Callable[..., Awaitable[Api]]


async def test_seeded_history_rows_are_old_terminal_and_listed(api: Api) -> None:
    """seed_history adds terminal rows enqueued in the past, paged by the history, absent from the lean list."""
    seeded = api.emu.seed_history(5, video("Older work"), age_seconds=7200)
    assert all(g.status == "succeeded" and g.enqueued_at < time.time() - 7200 for g in seeded)
    _, active = await api.request("GET", "/api/ai/queue")
    assert active["count"] == 0
    _, history = await api.request("GET", "/api/ai/generations", params={"page_size": "2"})
    assert (history["total_entries"], history["total_pages"]) == (5, 3)
    row = await api.row(seeded[0].generation_id)
    assert row["status"] == "succeeded" and row["result_url"] and row["prompt"] == "Older work"


async def test_seed_history_refuses_a_text_model(emu: Emulator) -> None:
    """Only image and video models have rows to seed."""
    with pytest.raises(ValueError, match="not an image or video model"):
        emu.seed_history(1, {"model": "gpt-4o-mini", "prompt": "x"})


async def test_history_order_is_a_knob(make_api: MakeApi) -> None:
    """history_newest_first=False pages oldest first (the real order is undocumented)."""
    api = await make_api(history_newest_first=False)
    seeded = api.emu.seed_history(3, image("older"))
    fresh = await api.enqueue_one(image("fresh"))
    await api.emu.wait_idle()
    _, page = await api.request("GET", "/api/ai/generations")
    ids = [row["generation_id"] for row in page["generations"]]
    assert ids == [g.generation_id for g in seeded] + [fresh]


async def test_lean_list_cap_drops_the_newest_rows(make_api: MakeApi) -> None:
    """With queue_list_cap the lean list silently stops after N rows, oldest first; history still has all."""
    api = await make_api(queue_list_cap=2, latency=SLOW_VIDEO)
    ids = [await api.enqueue_one(video(f"take {i}")) for i in range(4)]
    _, active = await api.request("GET", "/api/ai/queue")
    assert [row["generation_id"] for row in active["generations"]] == ids[:2]
    _, history = await api.request("GET", "/api/ai/generations")
    assert history["total_entries"] == 4


async def test_org_rows_need_the_namespace_filter(api: Api) -> None:
    """Rows billed to an org are listed only with namespace=ORG; the default is the caller's own."""
    mine = await api.enqueue_one(video("mine"))
    org = await api.enqueue_one(video("org", target_namespace="acme-org"))
    _, own = await api.request("GET", "/api/ai/queue", params={"model": KLING})
    _, acme = await api.request("GET", "/api/ai/queue", params={"model": KLING, "namespace": "acme-org"})
    assert [r["generation_id"] for r in own["generations"]] == [mine]
    assert [r["generation_id"] for r in acme["generations"]] == [org]
    _, history = await api.request("GET", "/api/ai/generations", params={"namespace": "acme-org"})
    assert [r["generation_id"] for r in history["generations"]] == [org]
    assert history["generations"][0]["target_namespace"] == "acme-org"


async def test_echo_defaults_fills_left_out_schema_defaults(make_api: MakeApi) -> None:
    """echo_defaults echoes aspect_ratio and generate_audio defaults; sent values win; off by default."""
    api = await make_api(echo_defaults=True)
    row = await api.row(await api.enqueue_one(video("defaults", aspect_ratio="9:16")))
    assert row["aspect_ratio"] == "9:16" and row["generate_audio"] is False
    _, history = await api.request("GET", f"/api/ai/generations/{row['generation_id']}")
    assert history["generation"]["generate_audio"] is False
    plain = await make_api()
    plain_row = await plain.row(await plain.enqueue_one(video("plain")))
    assert "generate_audio" not in plain_row and "aspect_ratio" not in plain_row


async def test_org_events_can_be_withheld(make_api: MakeApi) -> None:
    """events_for_other_namespaces=False: an org-billed completion sends no event; the user's own does."""
    api = await make_api(events_for_other_namespaces=False, unrelated_event_every=0)
    stream = await api.events()
    org = await api.enqueue_one(image("org", target_namespace="acme-org"))
    await api.emu.wait_for_status(org)
    mine = await api.enqueue_one(image("mine"))
    async with asyncio.timeout(5):
        event = await stream.completion()
    assert event["generation_id"] == mine


async def test_a_clock_offset_moves_row_times_and_the_date_header(make_api: MakeApi) -> None:
    """clock_offset_seconds=-600: rows are enqueued, and every answer is dated, ten minutes before the
    real time, as a client whose own clock runs ten minutes fast sees its provider."""
    api = await make_api(clock_offset_seconds=-600)
    generation_id = await api.enqueue_one(video("skewed"))
    async with api.session.get(api.url(f"/api/ai/queue/{generation_id}"), headers=api.auth) as resp:
        row, dated = await resp.json(), email.utils.parsedate_to_datetime(resp.headers["Date"]).timestamp()
    assert row["enqueued_at"] == pytest.approx(time.time() - 600, abs=2)
    assert dated == pytest.approx(time.time() - 600, abs=2)


async def test_history_pages_can_be_capped_and_page_ignored(make_api: MakeApi) -> None:
    """history_page_size_cap serves fewer rows than page_size asks (and says so); history_ignores_page
    answers every page with the first."""
    capped = await make_api(history_page_size_cap=2)
    capped.emu.seed_history(5, video("older"))
    _, page = await capped.request("GET", "/api/ai/generations", params={"page_size": "1000", "page": "2"})
    assert (len(page["generations"]), page["page_size"], page["total_pages"]) == (2, 2, 3)
    ignoring = await make_api(history_ignores_page=True)
    ignoring.emu.seed_history(5, video("older"))
    params = {"page_size": "2"}
    _, first = await ignoring.request("GET", "/api/ai/generations", params={**params, "page": "1"})
    _, third = await ignoring.request("GET", "/api/ai/generations", params={**params, "page": "3"})
    ids = [[row["generation_id"] for row in page["generations"]] for page in (first, third)]
    assert ids[0] == ids[1] and len(ids[0]) == 2
