"""GET /api/ai/queue/{id}, GET /api/ai/queue and DELETE /api/ai/queue/{id}; the generation lifecycle."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from batchgen.emulator import LatencyConfig, ManualClock

from .support import FLUX, KLING, SLOW_VIDEO, Api, image, video

NOT_FOUND = {
    "error": {"type": "resource_not_found", "title": "The requested resource could not be found"},
    "status": "error",
    "status_message": "resource_not_found",
}
DOCUMENTED = {
    "generation_id",
    "model_name",
    "prompt",
    "media_type",
    "status",
    "result_url",
    "error_message",
    "enqueued_at",
    "started_at",
    "completed_at",
}
SHOTS = [
    {"prompt": "Aerial view of waves crashing on a rocky shore", "duration": 5},
    {"prompt": "Camera pulls back to reveal the full coastline", "duration": 5},
]


async def test_queued_row_has_documented_fields_and_echoes_params(api: Api) -> None:
    """A fresh row: documented fields, status queued, request params echoed, no model/num_generations."""
    body = video(aspect_ratio="16:9", duration=10, seed=42, num_generations=1, custom_flag={"a": [1, 2]})
    generation_id = await api.enqueue_one({**body, "model": KLING})
    row = await api.row(generation_id)
    assert row.keys() == DOCUMENTED | {"aspect_ratio", "duration", "seed", "custom_flag"}
    assert row["generation_id"] == generation_id
    assert row["model_name"] == KLING
    assert row["prompt"] == "An astronaut walking on Mars"
    assert row["media_type"] == "video"
    assert row["status"] in ("queued", "processing")
    assert (row["result_url"], row["error_message"], row["completed_at"]) == (None, None, None)
    assert isinstance(row["enqueued_at"], int)
    assert (row["aspect_ratio"], row["duration"], row["seed"], row["custom_flag"]) == (
        "16:9",
        10,
        42,
        {"a": [1, 2]},
    )


async def test_prompt_is_null_for_multi_prompt_requests(api: Api) -> None:
    """A multi_prompt-only request has prompt: null and its multi_prompt echoed."""
    row = await api.row(
        await api.enqueue_one({"model": KLING, "multi_prompt": SHOTS, "aspect_ratio": "16:9"})
    )
    assert row["prompt"] is None
    assert row["multi_prompt"] == SHOTS


async def test_target_namespace_is_echoed_only_when_submitted(api: Api) -> None:
    """target_namespace appears in queue rows only if the request carried it."""
    plain = await api.row(await api.enqueue_one(image()))
    org = await api.row(await api.enqueue_one(image(target_namespace="my-org")))
    assert "target_namespace" not in plain
    assert org["target_namespace"] == "my-org"


async def test_lifecycle_queued_then_processing(make_api: Any) -> None:
    """A row waits 'queued' (started_at null) for a free slot, then turns 'processing' with started_at set."""
    api = await make_api(latency=SLOW_VIDEO, account_concurrency=1)
    blocker = await api.enqueue_one(video())
    waiting = await api.enqueue_one(video())
    await api.emu.wait_for_status(blocker, "processing")
    queued = await api.row(waiting)
    assert (queued["status"], queued["started_at"]) == ("queued", None)
    await api.request("DELETE", f"/api/ai/queue/{blocker}")
    await api.emu.wait_for_status(waiting, "processing")
    processing = await api.row(waiting)
    assert processing["status"] == "processing"
    assert isinstance(processing["started_at"], int)
    assert (processing["completed_at"], processing["result_url"], processing["error_message"]) == (None,) * 3


async def test_render_seconds_pattern_sets_each_render_time(make_api: Any) -> None:
    """With render_seconds_pattern, a prompt that carries its render time renders for exactly that
    long (60 simulated s = 60 ms here); a prompt without one still gets the lognormal draw."""
    latency = LatencyConfig(
        queue_wait_median_seconds=0, video_render_median_seconds=86_400, latency_sigma=0.0,
        render_seconds_pattern=r"render=(\d+)s",
    )  # fmt: skip
    api = await make_api(latency=latency)
    loop = asyncio.get_running_loop()
    began = loop.time()
    tagged = await api.enqueue_one(video("A dolly shot, render=60s"))
    untagged = await api.enqueue_one(video("A dolly shot"))
    await api.emu.wait_for_status(tagged, "succeeded")
    assert loop.time() - began >= 0.06
    assert api.emu.generation(untagged).status == "processing"


async def test_lifecycle_ends_succeeded(api: Api) -> None:
    """A finished row is 'succeeded' with completed_at, a result_url and no error_message."""
    done = await api.finished_row(image())
    assert done["status"] == "succeeded"
    assert done["enqueued_at"] <= done["started_at"] <= done["completed_at"]
    assert done["result_url"].startswith(api.emu.base_url + "/api/repos/")
    assert done["error_message"] is None
    assert api.emu.generation(done["generation_id"]).history == ["queued", "processing", "succeeded"]


async def test_timestamps_come_from_the_clock(start: Any, session: Any) -> None:
    """enqueued_at/started_at/completed_at are integer Unix seconds from the (injectable) clock."""
    clock = ManualClock(start=1_775_091_431.9)
    emulator = await start(clock=clock)
    api = Api(emulator, session)
    row = await api.finished_row(image())
    assert row["enqueued_at"] == row["started_at"] == row["completed_at"] == 1_775_091_431


async def test_unknown_generation_is_404_envelope(api: Api) -> None:
    """GET of an unknown (or malformed) id is 404 with the exact resource_not_found body."""
    for generation_id in ("00000000-0000-4000-8000-000000000000", "not-a-uuid"):
        assert await api.request("GET", f"/api/ai/queue/{generation_id}") == (404, NOT_FOUND)


async def test_rows_persist_after_completion(api: Api) -> None:
    """A terminal row still answers 200 with its final status (current contract, not the old 404)."""
    row = await api.finished_row(image())
    assert row["status"] == "succeeded"
    assert (await api.row(row["generation_id"]))["status"] == "succeeded"


async def test_list_defaults_to_active_rows_only(make_api: Any) -> None:
    """Without status, the list holds only queued/processing rows; count matches the list."""
    api = await make_api(latency=SLOW_VIDEO)
    done = await api.finished_row(image())
    active = await api.enqueue(video(num_generations=2))
    status, payload = await api.request("GET", "/api/ai/queue")
    assert status == 200
    assert payload["count"] == len(payload["generations"]) == 2
    assert [row["generation_id"] for row in payload["generations"]] == active
    assert done["generation_id"] not in {row["generation_id"] for row in payload["generations"]}
    assert all(row.keys() >= DOCUMENTED for row in payload["generations"])


async def test_list_status_filter_includes_terminal_rows(make_api: Any) -> None:
    """status=<one value> selects exactly that status, terminal ones included."""
    api = await make_api(latency=SLOW_VIDEO)
    succeeded = (await api.finished_row(image()))["generation_id"]
    failed = (await api.finished_row({"model": FLUX}))["generation_id"]
    processing = await api.enqueue_one(video())
    await api.emu.wait_for_status(processing, "processing")
    for status, expected in (
        ("succeeded", [succeeded]),
        ("failed", [failed]),
        ("processing", [processing]),
        ("queued", []),
        ("cancelled", []),
    ):
        _, payload = await api.request("GET", "/api/ai/queue", params={"status": status})
        assert [row["generation_id"] for row in payload["generations"]] == expected, status
        assert payload["count"] == len(expected)


async def test_list_filters(make_api: Any) -> None:
    """model, media_type, namespace, repo and folder filters narrow the list."""
    api = await make_api(latency=SLOW_VIDEO)
    vid = await api.enqueue_one(video())
    img = await api.enqueue_one({**image(), "model": FLUX, "prompt": "x"})
    org = await api.enqueue_one(video(target_namespace="my-org"))

    async def ids(**params: str) -> list[str]:
        _, payload = await api.request("GET", "/api/ai/queue", params=params)
        return [row["generation_id"] for row in payload["generations"]]

    await api.emu.wait_for_status(img)
    assert await ids(model=KLING) == [vid]
    assert await ids(media_type="video") == [vid]
    assert await ids(namespace="my-org") == [org]
    assert await ids(namespace="emulator-user", status="succeeded") == [img]
    assert await ids(repo="ai-generations", folder=KLING) == [vid]
    assert await ids(folder="nope") == []


@pytest.mark.parametrize(("param", "value"), [("status", "done"), ("media_type", "audio")])
async def test_list_rejects_unknown_enum_values(api: Api, param: str, value: str) -> None:
    """An unknown status or media_type is 400 invalid_params."""
    status, payload = await api.request("GET", "/api/ai/queue", params={param: value})
    assert status == 400
    assert payload["error"]["type"] == "invalid_params"


async def test_list_is_ordered_by_enqueue_time(make_api: Any) -> None:
    """Rows come back oldest first."""
    api = await make_api(latency=SLOW_VIDEO)
    ids = [await api.enqueue_one(video(prompt=f"shot {n}")) for n in range(5)]
    _, payload = await api.request("GET", "/api/ai/queue")
    assert [row["generation_id"] for row in payload["generations"]] == ids


async def test_cancel_processing_generation(make_api: Any) -> None:
    """DELETE on a processing row: 200 {status, generation_id}, row becomes cancelled with completed_at."""
    api = await make_api(latency=SLOW_VIDEO)
    generation_id = await api.enqueue_one(video())
    await api.emu.wait_for_status(generation_id, "processing")
    status, payload = await api.request("DELETE", f"/api/ai/queue/{generation_id}")
    assert (status, payload) == (200, {"status": "success", "generation_id": generation_id})
    row = await api.row(generation_id)
    assert row["status"] == "cancelled"
    assert isinstance(row["completed_at"], int)
    assert row["result_url"] is None
    await api.emu.wait_idle()


async def test_cancel_queued_generation(make_api: Any) -> None:
    """A queued row can be cancelled and never starts."""
    api = await make_api(latency=SLOW_VIDEO, account_concurrency=1)
    first = await api.enqueue_one(video())
    second = await api.enqueue_one(video())
    await api.emu.wait_for_status(first, "processing")
    await api.request("DELETE", f"/api/ai/queue/{second}")
    row = await api.row(second)
    assert (row["status"], row["started_at"]) == ("cancelled", None)


async def test_cancel_terminal_generation_is_a_noop(api: Api) -> None:
    """DELETE on a terminal row answers 200 and leaves the row unchanged."""
    row = await api.finished_row(image())
    status, payload = await api.request("DELETE", f"/api/ai/queue/{row['generation_id']}")
    assert (status, payload) == (200, {"status": "success", "generation_id": row["generation_id"]})
    after = await api.row(row["generation_id"])
    assert (after["status"], after["completed_at"]) == ("succeeded", row["completed_at"])


async def test_cancel_unknown_generation_is_404(api: Api) -> None:
    """DELETE of an unknown id is 404 with the resource_not_found envelope."""
    assert await api.request("DELETE", "/api/ai/queue/00000000-0000-4000-8000-000000000000") == (
        404,
        NOT_FOUND,
    )


async def test_wait_idle_resolves_when_nothing_is_active(api: Api) -> None:
    """wait_idle() returns at once when idle, and after every generation is terminal otherwise."""
    await api.emu.wait_idle()
    ids = await api.enqueue(image(num_generations=4)) + await api.enqueue(video(num_generations=2))
    await api.emu.wait_idle()
    assert {api.emu.generation(i).status for i in ids} == {"succeeded"}
