"""GET /api/events: wire format, payloads, keep-alives, no replay, no event on cancel, shutdown."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import aiohttp

from batchgen.emulator import Emulator, run_emulator

from .support import FLUX, KLING, SLOW_VIDEO, Api, fast_config, image, video


async def test_stream_headers(api: Api) -> None:
    """The stream answers 200 with Content-Type text/event-stream."""
    stream = await api.events()
    assert stream.response.content_type == "text/event-stream"
    stream.close()


async def test_succeeded_event_wire_format_and_payload(api: Api) -> None:
    """One 'event:' line, one single-line JSON 'data:' line, a blank line; exactly the documented keys."""
    stream = await api.events()
    generation_id = await api.enqueue_one(video())
    lines = await stream.frame()
    while lines[0].startswith(":"):
        lines = await stream.frame()
    assert lines[0] == "event: media_generation_completed"
    assert len(lines) == 2 and lines[1].startswith("data: {")
    payload = json.loads(lines[1][len("data: ") :])
    assert list(payload) == ["generation_id", "status", "media_type", "model", "url"]
    assert payload["generation_id"] == generation_id
    assert (payload["status"], payload["media_type"], payload["model"]) == ("succeeded", "video", KLING)
    assert payload["url"].startswith(api.emu.base_url + "/api/repos/")
    assert not any(line.startswith(("id:", "retry:")) for line in stream.raw)
    stream.close()


async def test_failed_event_carries_error(api: Api) -> None:
    """A failed generation's event has generation_id, status, media_type and error (= error_message)."""
    stream = await api.events()
    generation_id = await api.enqueue_one({"model": KLING, "prompt": "x", "duration": 2})
    payload = await stream.completion()
    assert list(payload) == ["generation_id", "status", "media_type", "error"]
    assert (payload["generation_id"], payload["status"], payload["media_type"]) == (
        generation_id,
        "failed",
        "video",
    )
    assert payload["error"] == (await api.row(generation_id))["error_message"]
    stream.close()


async def test_event_url_downloads_without_key(api: Api, session: aiohttp.ClientSession) -> None:
    """The event's url is presigned: a plain GET without Authorization fetches the result."""
    stream = await api.events()
    generation_id = await api.enqueue_one(image())
    payload = await stream.completion()
    async with session.get(payload["url"]) as resp:
        assert resp.status == 200
        assert resp.content_type == "image/png"
        body = await resp.read()
    assert api.emu.result_sha256(generation_id) == hashlib.sha256(body).hexdigest()
    stream.close()


async def test_keepalive_comment_when_idle(make_api: Any) -> None:
    """': keep-alive' comment frames arrive every keepalive_seconds while idle."""
    api = await make_api(keepalive_seconds=0.05)
    stream = await api.events()
    assert await stream.frame() == [": keep-alive"]
    assert await stream.frame() == [": keep-alive"]
    assert api.emu.counters.keepalives_sent >= 2
    stream.close()


async def test_no_replay_of_events_before_connecting(api: Api) -> None:
    """Events that fired before a connection opened are never delivered to it."""
    early = await api.finished_row(image())
    stream = await api.events()
    late = await api.enqueue_one(image())
    assert (await stream.completion())["generation_id"] == late
    assert early["generation_id"] not in "\n".join(stream.raw)
    stream.close()


async def test_every_open_connection_gets_each_event(api: Api) -> None:
    """Each completion is broadcast to all connections open at that moment."""
    first, second = await api.events(), await api.events()
    generation_id = await api.enqueue_one(image())
    assert (await first.completion())["generation_id"] == generation_id
    assert (await second.completion())["generation_id"] == generation_id
    assert api.emu.counters.sse_connections == 2
    assert api.emu.counters.events_sent == 2
    first.close()
    second.close()


async def test_no_event_for_cancelled_generation(make_api: Any) -> None:
    """Cancelling sends nothing: the next event on the stream is the following generation's."""
    api = await make_api(latency=SLOW_VIDEO)
    stream = await api.events()
    cancelled = await api.enqueue_one(video())
    await api.emu.wait_for_status(cancelled, "processing")
    await api.request("DELETE", f"/api/ai/queue/{cancelled}")
    later = await api.enqueue_one(image())
    assert (await stream.completion())["generation_id"] == later
    assert cancelled not in "\n".join(stream.raw)
    stream.close()


async def test_one_event_per_generation(api: Api) -> None:
    """num_generations=4 yields exactly four completion events, one per id."""
    stream = await api.events()
    ids = await api.enqueue({"model": FLUX, "prompt": "x", "num_generations": 4})
    seen = [(await stream.completion())["generation_id"] for _ in ids]
    assert sorted(seen) == sorted(ids)
    stream.close()


async def test_unrelated_events_are_interleaved(make_api: Any) -> None:
    """Every unrelated_event_every completions, an unrelated 'deployment_status' event is sent."""
    api = await make_api(unrelated_event_every=2)
    stream = await api.events()
    await api.enqueue(image(num_generations=2))
    names = [(await stream.event())[0] for _ in range(3)]
    assert names == ["media_generation_completed", "media_generation_completed", "deployment_status"]
    assert api.emu.counters.unrelated_events_sent == 1
    stream.close()


async def test_unrelated_events_can_be_disabled(make_api: Any) -> None:
    """unrelated_event_every=0 never sends unrelated events."""
    api = await make_api(unrelated_event_every=0)
    stream = await api.events()
    await api.enqueue(image(num_generations=4))
    await api.emu.wait_idle()
    later = await api.enqueue_one(image())
    names = [(await stream.event())[0] for _ in range(5)]
    assert set(names) == {"media_generation_completed"}
    assert (await api.row(later))["status"] == "succeeded"
    assert api.emu.counters.unrelated_events_sent == 0
    stream.close()


async def test_stop_ends_open_streams_promptly(session: aiohttp.ClientSession) -> None:
    """Stopping the emulator closes open SSE streams cleanly instead of hanging."""
    emulator = Emulator(fast_config())
    await emulator.start()
    stream = await Api(emulator, session).events()
    async with asyncio.timeout(5):
        await emulator.stop()
        assert await stream.response.content.read() == b""


async def test_run_emulator_context_stops_with_stream_open(session: aiohttp.ClientSession) -> None:
    """Leaving run_emulator with a stream still open does not hang."""
    async with asyncio.timeout(5):
        async with run_emulator(fast_config()) as emulator:
            stream = await Api(emulator, session).events()
        assert await stream.response.content.read() == b""
