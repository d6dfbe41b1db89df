"""Credits: reservation at enqueue, charging on success, top-ups, and credits running out."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .support import FLUX, KLING, SLOW_VIDEO, T2V, Api, image, video

INSUFFICIENT = {
    "error": {
        "type": "insufficient_credits",
        "title": "Insufficient credits",
        "detail": "Insufficient credits",
    },
    "status": "error",
    "status_message": "insufficient_credits",
}


async def test_enqueue_refused_when_balance_cannot_cover(make_api: Any) -> None:
    """A 5 s video ($1.12) with $1.00 left is refused: 402 with the insufficient_credits envelope."""
    api = await make_api(credits_usd=1.0)
    assert await api.request("POST", "/api/ai/queue", json=video()) == (402, INSUFFICIENT)
    assert api.emu.counters.generations_enqueued == 0


async def test_active_generations_reserve_credits(make_api: Any) -> None:
    """Queued/processing rows reserve their price: the balance covers two 5 s videos, not three."""
    api = await make_api(credits_usd=2.24, latency=SLOW_VIDEO)
    await api.enqueue(video(num_generations=2))
    assert (await api.request("POST", "/api/ai/queue", json=video()))[0] == 402
    assert (await api.request("POST", "/api/ai/queue", json=video(num_generations=3)))[0] == 402
    api.emu.add_credits(1.12)
    assert len(await api.enqueue(video())) == 1


async def test_whole_request_must_fit(make_api: Any) -> None:
    """num_generations=4 is refused as a whole when only three fit; nothing is created."""
    api = await make_api(credits_usd=0.15)
    assert (await api.request("POST", "/api/ai/queue", json=image(num_generations=4)))[0] == 402
    assert len(await api.enqueue(image(num_generations=3))) == 3


async def test_success_is_charged_pricing_times_duration(make_api: Any) -> None:
    """cost = cost_per_second x total seconds (sum of shots), charged when the generation succeeds."""
    api = await make_api(credits_usd=10)
    shots = [{"prompt": "a", "duration": 5}, {"prompt": "b", "duration": 5}]
    row = await api.finished_row({"model": KLING, "multi_prompt": shots})
    gen = api.emu.generation(row["generation_id"])
    assert gen.cost == Decimal("2.240")
    assert api.emu.credits_remaining == Decimal("7.760")


async def test_duration_defaults_to_five_seconds(make_api: Any) -> None:
    """Without duration a video is billed as 5 seconds."""
    api = await make_api(credits_usd=10)
    row = await api.finished_row({"model": KLING, "multi_prompt": [{"prompt": "a"}]})
    assert api.emu.generation(row["generation_id"]).cost == Decimal("1.120")


async def test_audio_and_image_pricing(make_api: Any) -> None:
    """generate_audio uses cost_per_second_with_audio; image models cost cost_per_image."""
    api = await make_api(credits_usd=10)
    with_audio = await api.finished_row({"model": T2V, "prompt": "a", "duration": 10, "generate_audio": True})
    picture = await api.finished_row({"model": FLUX, "prompt": "a"})
    assert api.emu.generation(with_audio["generation_id"]).cost == Decimal("1.40")
    assert api.emu.generation(picture["generation_id"]).cost == Decimal("0.05")


async def test_failed_generations_are_not_charged(make_api: Any) -> None:
    """A generation failing a model rule costs nothing and releases its reservation."""
    api = await make_api(credits_usd=1.12)
    row = await api.finished_row({"model": KLING})  # neither prompt nor multi_prompt
    assert row["status"] == "failed"
    assert api.emu.generation(row["generation_id"]).cost is None
    assert api.emu.credits_remaining == Decimal("1.12")
    assert len(await api.enqueue(video())) == 1


async def test_cancelled_generations_are_not_charged(make_api: Any) -> None:
    """Cancelling releases the reservation and charges nothing."""
    api = await make_api(credits_usd=1.12, latency=SLOW_VIDEO)
    generation_id = await api.enqueue_one(video())
    await api.request("DELETE", f"/api/ai/queue/{generation_id}")
    assert api.emu.credits_remaining == Decimal("1.12")
    assert len(await api.enqueue(video())) == 1


async def test_unlimited_credits_by_default(api: Api) -> None:
    """credits_usd unset means no limit (credits_remaining is None)."""
    assert api.emu.credits_remaining is None
    assert len(await api.enqueue(video(duration=15, num_generations=4))) == 4


async def test_credits_run_out_after_a_set_spend(api: Api) -> None:
    """credits_exhaust_after_usd: once that much was charged, enqueues get 402 until the fault is lifted."""
    api.emu.set_faults(credits_exhaust_after_usd=0.10)
    await api.enqueue(image(num_generations=2))
    await api.emu.wait_idle()
    assert await api.request("POST", "/api/ai/queue", json=image()) == (402, INSUFFICIENT)
    api.emu.set_faults(credits_exhaust_after_usd=None)
    assert len(await api.enqueue(image())) == 1


async def test_queued_rows_fail_when_credits_run_out(make_api: Any) -> None:
    """Rows still queued when the credits run out fail with error_message 'Insufficient credits'."""
    api = await make_api(account_concurrency=1, latency=SLOW_VIDEO)
    running, *waiting = await api.enqueue(video(num_generations=3))
    await api.emu.wait_for_status(running, "processing")
    api.emu.set_faults(credits_exhaust_after_usd=0)
    stream = await api.events()
    await api.request("DELETE", f"/api/ai/queue/{running}")
    await api.emu.wait_idle()
    for generation_id in waiting:
        row = await api.row(generation_id)
        assert (row["status"], row["error_message"]) == ("failed", "Insufficient credits")
    assert (await stream.completion())["error"] == "Insufficient credits"
    stream.close()


async def test_add_credits_rejects_negative_amounts(make_api: Any) -> None:
    """add_credits refuses a negative top-up."""
    api = await make_api(credits_usd=1)
    try:
        api.emu.add_credits(-1)
    except ValueError as exc:
        assert "usd must be >= 0" in str(exc)
    else:
        raise AssertionError("negative credits accepted")
