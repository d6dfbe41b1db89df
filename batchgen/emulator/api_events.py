"""``GET /api/events``: the user-scoped SSE stream of completion events."""

from __future__ import annotations

import asyncio

from aiohttp import web

from batchgen.emulator.events import COMPLETED, KEEPALIVE, Close, Completion, Notice, Subscriber, frame
from batchgen.emulator.responses import origin_of, state_of
from batchgen.emulator.state import EmulatorState
from batchgen.emulator.views import completion_payload


async def events(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    response = web.StreamResponse(headers={"Cache-Control": "no-cache"})
    response.content_type = "text/event-stream"
    await response.prepare(request)
    state.counters.sse_connections += 1
    subscriber = state.hub.subscribe(origin_of(request))
    try:
        await _Stream(request, response, subscriber, state).run()
    except ConnectionResetError:
        pass  # the client went away; its events are simply lost, as on the real service
    finally:
        state.hub.unsubscribe(subscriber)
    return response


class _Stream:
    def __init__(
        self, request: web.Request, response: web.StreamResponse, subscriber: Subscriber, state: EmulatorState
    ) -> None:
        self._request, self._response = request, response
        self._subscriber, self._state = subscriber, state
        self._loop = asyncio.get_running_loop()
        self._opened = self._loop.time()
        self._delivered = 0

    def _cut_in(self) -> float | None:
        """Real seconds until the 'cut every N seconds' fault closes this stream, if set."""
        every = self._state.faults.config.sse_cut_every_seconds
        return None if every is None else self._opened + every - self._loop.time()

    def _cut(self) -> None:
        self._state.faults.count("sse_cut")
        if self._request.transport is not None:
            self._request.transport.close()

    async def run(self) -> None:
        while True:
            cut_in = self._cut_in()
            if cut_in is not None and cut_in <= 0:
                return self._cut()
            timeout = self._state.config.keepalive_seconds
            try:
                async with asyncio.timeout(timeout if cut_in is None else min(timeout, cut_in)):
                    notice = await self._subscriber.queue.get()
            except TimeoutError:
                await self._idle()
                continue
            if isinstance(notice, Close):
                return None
            await self._send(notice)
            limit = self._state.faults.config.sse_cut_after_events
            if (
                limit is not None and self._delivered >= limit
            ) or self._state.faults.should_cut_stream_once():
                return self._cut()

    async def _idle(self) -> None:
        cut_in = self._cut_in()
        if cut_in is None or cut_in > 0:
            await self._response.write(KEEPALIVE)
            self._state.counters.keepalives_sent += 1

    async def _send(self, notice: Notice) -> None:
        counters = self._state.counters
        if isinstance(notice, Completion):
            gen = notice.generation
            url = self._state.result_url(gen, self._subscriber.origin)
            await self._response.write(frame(COMPLETED, completion_payload(gen, url)))
            counters.events_sent += 1
            self._state.timeline.mark(gen.generation_id, "event_sent")
        elif not isinstance(notice, Close):
            await self._response.write(frame(notice.name, notice.payload))
            counters.unrelated_events_sent += 1
        self._delivered += 1
