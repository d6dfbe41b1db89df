"""The one shared `/api/events` connection of a run: connect, idle watchdog, reconnect with the retry
policy's reconnect backoff (`retry.attempts`, never giving up), and completion events handed to the
runner. It knows nothing of jobs or the journal."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from batchgen.client.api import Completion, OxenClient, mapped_errors
from batchgen.client.sse import ServerSentEvent, SSEDecoder, SSELimitExceeded
from batchgen.errors import ApiError, RateLimited
from batchgen.retry import attempts

log = logging.getLogger(__name__)

COMPLETION_EVENT = "media_generation_completed"


def completion_from_event(event: ServerSentEvent) -> Completion | None:
    """The completion an event carries, or None for any other event (the stream is user-scoped)."""
    if event.event != COMPLETION_EVENT:
        return None
    try:
        payload = json.loads(event.data)
    except (ValueError, RecursionError):  # RecursionError: JSON nested about a thousand levels deep
        log.warning("ignoring a %s event whose data is not JSON", COMPLETION_EVENT)
        return None
    if not isinstance(payload, dict) or "generation_id" not in payload:
        return None
    status = str(payload.get("status", ""))
    if status not in ("succeeded", "failed"):
        return None
    url = payload.get("url")
    error = payload.get("error")
    return Completion(
        generation_id=str(payload["generation_id"]),
        status=status,
        url=str(url) if url else None,
        error=str(error) if error else None,
    )


class EventStream:
    """Keeps one event-stream connection open until cancelled.

    `on_connect` is called after every (re)connect, so the caller can reconcile whatever
    completed while it was disconnected: the stream has no ids and no replay.
    """

    def __init__(
        self,
        client: OxenClient,
        *,
        on_completion: Callable[[Completion], None],
        on_connect: Callable[[], None],
        idle_timeout_s: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self._on_completion = on_completion
        self._on_connect = on_connect
        self._idle_timeout_s = idle_timeout_s
        self._sleep = sleep
        self.connected = asyncio.Event()
        self.connections = 0

    async def wait_connected(self) -> None:
        await self.connected.wait()

    async def run(self) -> None:
        policy = self._client.retry_policy.reconnects()
        while True:  # the server ended a healthy stream: reconnect at once, counting afresh
            async for attempt in attempts(
                policy, limit=None, on=_lost, what="event stream", sleep=self._sleep
            ):
                with attempt:
                    try:
                        await self._listen_once()
                    finally:
                        if self.connected.is_set():  # only failed connects back off further
                            attempt.restart()
                        self.connected.clear()

    async def _listen_once(self) -> None:
        # A cut or silent stream becomes ResponseLost or ResponseTimeout.
        with mapped_errors("GET", "/api/events"):
            async with self._client.open_events() as resp:
                decoder = SSEDecoder()
                self.connections += 1
                self.connected.set()
                self._on_connect()
                while True:
                    # Any byte, keep-alive comments included, proves the stream alive.
                    async with asyncio.timeout(self._idle_timeout_s):
                        chunk = await resp.content.readany()
                    if not chunk:
                        break
                    try:
                        events = decoder.feed(chunk)
                    except SSELimitExceeded as exc:
                        # Not a cut: a server sending this again must not be reconnected to at full
                        # speed, so the failures go on counting (`connected` cleared).
                        self.connected.clear()
                        log.warning("event stream: %s; dropping the connection and reconnecting", exc)
                        resp.close()  # the rest of this stream cannot be trusted: never reuse the connection
                        raise
                    self._dispatch(events)
                self._dispatch(decoder.close())

    def _dispatch(self, events: list[ServerSentEvent]) -> None:
        for event in events:
            completion = completion_from_event(event)
            if completion is not None:
                self._on_completion(completion)


def _lost(error: Exception) -> bool | float:
    """What the stream reconnects after: anything but a wrong key; a 429 at once (the client's shared
    pause holds the reconnect for its Retry-After)."""
    if isinstance(error, RateLimited):
        return 0.0
    return isinstance(error, ApiError | SSELimitExceeded | TimeoutError | ConnectionError)
