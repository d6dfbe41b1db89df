"""create_app for aiohttp's test utilities, unknown routes, and the request counters."""

from __future__ import annotations

from typing import Any

from batchgen.emulator import EmulatorConfig, create_app, state_of_app

from .support import KLING, Api, image, video


async def test_create_app_works_with_aiohttp_client(aiohttp_client: Any) -> None:
    """create_app(config) runs under pytest-aiohttp; its state is reachable with state_of_app."""
    app = create_app(EmulatorConfig(time_scale=0.001))
    client = await aiohttp_client(app)
    auth = {"Authorization": "Bearer emulator-key"}
    resp = await client.post("/api/ai/queue", json=video(), headers=auth)
    assert resp.status == 200
    generation_id = (await resp.json())["generations"][0]["generation_id"]
    state = state_of_app(app)
    await state.engine.wait_idle()
    assert state.queue.get(generation_id).status == "succeeded"  # type: ignore[union-attr]
    row = await (await client.get(f"/api/ai/queue/{generation_id}", headers=auth)).json()
    assert row["result_url"].startswith(str(client.make_url("/api/repos/")))


async def test_unknown_route_is_404_envelope(api: Api) -> None:
    """An unknown path answers the resource_not_found envelope; a wrong method answers 405."""
    status, payload = await api.request("GET", "/api/ai/nothing-here")
    assert (status, payload["status_message"]) == (404, "resource_not_found")
    status, payload = await api.request("PATCH", "/api/ai/queue")
    assert (status, payload["status_message"]) == (405, "method_not_allowed")


async def test_request_counters_by_route_template(api: Api) -> None:
    """Requests are counted per 'METHOD /route/template'."""
    generation_id = await api.enqueue_one(image())
    await api.row(generation_id)
    await api.row(generation_id)
    await api.request("GET", "/api/ai/models")
    await api.request("GET", "/api/ai/queue", headers={"Authorization": "Bearer wrong"})
    requests = api.emu.counters.snapshot()["requests"]
    assert requests == {
        "POST /api/ai/queue": 1,
        "GET /api/ai/queue/{generation_id}": 2,
        "GET /api/ai/models": 1,
        "GET /api/ai/queue": 1,
    }


async def test_enqueue_counters_by_identical_body(api: Api) -> None:
    """Generations are counted per canonical request body (key order ignored), plus totals."""
    body = {"model": KLING, "prompt": "same", "aspect_ratio": "16:9"}
    await api.enqueue(body)
    await api.enqueue(dict(reversed(list(body.items()))))
    await api.enqueue({**body, "num_generations": 3})
    counters = api.emu.counters
    assert counters.enqueued_for(body) == 2
    assert counters.enqueued_for({**body, "num_generations": 3}) == 3
    assert (counters.enqueue_requests, counters.generations_enqueued) == (3, 5)


async def test_snapshot_is_an_independent_copy(api: Api) -> None:
    """snapshot() is a plain dict that later activity does not change."""
    before = api.emu.counters.snapshot()
    await api.enqueue(image())
    assert before["generations_enqueued"] == 0
    assert api.emu.counters.snapshot()["generations_enqueued"] == 1
    assert set(before) >= {
        "requests",
        "enqueue_requests",
        "generations_enqueued",
        "enqueued_by_body",
        "bytes_served",
        "sse_connections",
        "events_sent",
        "faults",
    }


async def test_base_url_and_loopback(api: Api) -> None:
    """base_url is http://127.0.0.1:PORT with no trailing slash."""
    assert api.emu.base_url.startswith("http://127.0.0.1:")
    assert not api.emu.base_url.endswith("/")


async def test_public_base_url_overrides_result_origin(make_api: Any) -> None:
    """public_base_url replaces the request origin in result URLs."""
    api = await make_api(public_base_url="https://results.example")
    row = await api.finished_row(image())
    assert row["result_url"].startswith(
        "https://results.example/api/repos/emulator-user/ai-generations/files/"
    )
