"""The shared event stream: completions handed over, other events ignored, dead streams replaced."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from batchgen.client.api import Completion, OxenClient
from batchgen.client.events import EventStream, completion_from_event
from batchgen.client.sse import ServerSentEvent
from batchgen.config import Timeouts

SUCCEEDED = (
    'event: media_generation_completed\r\ndata: {"generation_id":"g1","status":"succeeded",'
    '"media_type":"video","model":"m","url":"http://x/v.mp4?t=1"}\r\n\r\n'
)
FAILED = (
    'event: media_generation_completed\ndata: {"generation_id":"g2","status":"failed",'
    '"media_type":"video","error":"Insufficient credits"}\n\n'
)
UNRELATED = 'event: deployment_status\ndata: {"generation_id":"g3","status":"succeeded"}\n\n'


def event(name: str, data: str) -> ServerSentEvent:
    return ServerSentEvent(name, data, None, None)


def test_completion_events_are_parsed_and_others_ignored() -> None:
    """Only media_generation_completed with a terminal status becomes a Completion."""
    done = event("media_generation_completed", '{"generation_id":"a","status":"failed","error":"E"}')
    assert completion_from_event(done) == Completion("a", "failed", None, "E")
    assert completion_from_event(event("deployment_status", '{"generation_id":"a"}')) is None
    assert completion_from_event(event("media_generation_completed", "not json")) is None
    cancelled = event("media_generation_completed", '{"generation_id":"a","status":"cancelled"}')
    assert completion_from_event(cancelled) is None


def test_completion_data_nested_too_deeply_for_json_is_ignored() -> None:
    """Event data of 100,000 nested brackets (under the 1 MiB cap) is ignored, not a RecursionError."""
    deep = event("media_generation_completed", "[" * 100_000 + "]" * 100_000)
    assert completion_from_event(deep) is None


async def test_stream_delivers_completions_and_reconnects_after_going_silent() -> None:
    """Events reach the callback; a stream silent past the idle timeout is replaced by a new one."""
    connections = 0

    async def events(request: web.Request) -> web.StreamResponse:
        nonlocal connections
        connections += 1
        assert request.headers["Authorization"] == "Bearer k"
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if connections == 1:
            await resp.write((": keep-alive\n\n" + UNRELATED + SUCCEEDED).encode())
            await asyncio.Event().wait()  # then silence, forever
        await resp.write(FAILED[:30].encode())  # an event split across writes
        await resp.write(FAILED[30:].encode())
        return resp

    app = web.Application()
    app.router.add_get("/api/events", events)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    got: list[Completion] = []
    connects = 0
    both = asyncio.Event()

    def on_completion(c: Completion) -> None:
        got.append(c)
        if len(got) == 2:
            both.set()

    def on_connect() -> None:
        nonlocal connects
        connects += 1

    try:
        async with OxenClient(str(server.make_url("")).rstrip("/"), "k", timeouts=Timeouts()) as client:
            stream = EventStream(
                client, on_completion=on_completion, on_connect=on_connect, idle_timeout_s=0.3
            )
            task = asyncio.create_task(stream.run())
            async with asyncio.timeout(10):
                await both.wait()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await server.close()
    assert [c.generation_id for c in got] == ["g1", "g2"]
    assert got[0].url == "http://x/v.mp4?t=1"
    assert got[1].error == "Insufficient credits"
    assert connects >= 2 and connections >= 2


async def test_an_oversized_event_drops_the_connection_logs_once_and_reconnects(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that sends an event over the 1 MiB cap (then would stream on forever) is dropped
    with one warning; the stream reconnects (on_connect again, so the runner reconciles) and the
    next connection's completion is delivered."""
    connections = 0
    first_closed = asyncio.Event()

    async def events(request: web.Request) -> web.StreamResponse:
        nonlocal connections
        connections += 1
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if connections == 1:
            await resp.write(b"event: media_generation_completed\ndata: ")
            try:
                while True:  # an endless data line: only the client can end this
                    await resp.write(b"x" * 65536)
            finally:  # the client hung up: a write failed, or aiohttp cancelled this handler
                first_closed.set()
        await resp.write(SUCCEEDED.encode())
        await asyncio.Event().wait()
        return resp

    app = web.Application()
    app.router.add_get("/api/events", events)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    got: list[Completion] = []
    delivered = asyncio.Event()
    connects = 0

    def on_completion(c: Completion) -> None:
        got.append(c)
        delivered.set()

    def on_connect() -> None:
        nonlocal connects
        connects += 1

    try:
        async with OxenClient(str(server.make_url("")).rstrip("/"), "k", timeouts=Timeouts()) as client:
            stream = EventStream(client, on_completion=on_completion, on_connect=on_connect, idle_timeout_s=5)
            task = asyncio.create_task(stream.run())
            with caplog.at_level(logging.WARNING, logger="batchgen.client.events"):
                async with asyncio.timeout(10):
                    await delivered.wait()
                    await first_closed.wait()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await server.close()
    assert [c.generation_id for c in got] == ["g1"]
    assert connects == connections == 2 and stream.connections == 2
    warnings = [r.getMessage() for r in caplog.records if r.name == "batchgen.client.events"]
    assert warnings == [
        "event stream: a line longer than 1048576 characters; dropping the connection and reconnecting"
    ]
