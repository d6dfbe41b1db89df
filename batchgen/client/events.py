"""The one shared `/api/events` connection of a run: connect, idle watchdog, reconnect with
backoff, and completion events handed to the runner. It knows nothing of jobs or the journal."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable

import aiohttp

from batchgen.client.api import Completion, OxenClient
from batchgen.client.sse import ServerSentEvent, SSEDecoder, SSELimitExceeded
from batchgen.config import RetryPolicy
from batchgen.errors import ApiError, Unauthenticated
from batchgen.retry import backoff

log = logging.getLogger(__name__)

COMPLETION_EVENT = "media_generation_completed"
RECONNECT_POLICY = RetryPolicy(initial_s=0.05, max_s=5.0, jitter=0.5)


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
        self.events_seen = 0

    async def wait_connected(self) -> None:
        await self.connected.wait()

    async def run(self) -> None:
        rng = random.Random()
        failures = 0
        while True:
            try:
                await self._listen_once()
                failures = 0  # the server ended a healthy stream: reconnect at once
            except Unauthenticated:
                raise
            except SSELimitExceeded as exc:
                # Not a cut: a server sending this again must not be reconnected to at full speed.
                failures += 1
                log.warning("event stream: %s; dropping the connection and reconnecting", exc)
            except (ApiError, aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                # A stream that was up counts as a first failure: only failed connects back off further.
                failures = 1 if self.connected.is_set() else failures + 1
                log.info("event stream lost (%s); reconnecting (attempt %d)", _describe(exc), failures)
            finally:
                self.connected.clear()
            if failures:
                await self._sleep(backoff(failures, RECONNECT_POLICY, rng))

    async def _listen_once(self) -> None:
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
                except SSELimitExceeded:
                    resp.close()  # the rest of this stream cannot be trusted: never reuse the connection
                    raise
                self._dispatch(events)
            self._dispatch(decoder.close())

    def _dispatch(self, events: list[ServerSentEvent]) -> None:
        for event in events:
            self.events_seen += 1
            completion = completion_from_event(event)
            if completion is not None:
                self._on_completion(completion)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no data within the idle timeout"
    return f"{type(exc).__name__}: {exc}"
