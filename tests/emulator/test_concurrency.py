"""The account concurrency limit: excess generations wait 'queued' until a slot frees."""

from __future__ import annotations

from typing import Any

from .support import SLOW_VIDEO, Api, image, video


async def test_only_account_concurrency_generations_process_at_once(make_api: Any) -> None:
    """With account_concurrency=2, two videos process and the rest stay queued, oldest first."""
    api = await make_api(account_concurrency=2, latency=SLOW_VIDEO)
    ids = await api.enqueue(video(num_generations=4)) + await api.enqueue(video(num_generations=2))
    await api.emu.wait_for_status(ids[1], "processing")
    statuses = [api.emu.generation(i).status for i in ids]
    assert statuses == ["processing", "processing", "queued", "queued", "queued", "queued"]


async def test_a_freed_slot_starts_the_next_generation(make_api: Any) -> None:
    """When a processing generation ends, the oldest queued one starts."""
    api = await make_api(account_concurrency=2, latency=SLOW_VIDEO)
    ids = await api.enqueue(video(num_generations=4))
    await api.emu.wait_for_status(ids[1], "processing")
    await api.request("DELETE", f"/api/ai/queue/{ids[0]}")
    await api.emu.wait_for_status(ids[2], "processing")
    assert [api.emu.generation(i).status for i in ids] == ["cancelled", "processing", "processing", "queued"]


async def test_the_limit_never_exceeded_over_a_run(make_api: Any) -> None:
    """Across a batch of quick generations, never more than the limit were processing at once."""
    api = await make_api(account_concurrency=3)
    ids = [i for _ in range(5) for i in await api.enqueue(image(num_generations=4))]
    peak = 0

    def busy() -> bool:
        nonlocal peak
        peak = max(peak, api.emu.state.queue.processing_count)
        return api.emu.state.queue.active_count == 0

    await api.emu.state.engine.wait_until(busy)
    assert peak == 3
    assert {api.emu.generation(i).status for i in ids} == {"succeeded"}


async def test_default_limit_is_eight(api: Api) -> None:
    """The default account concurrency is 8."""
    assert api.emu.config.account_concurrency == 8
