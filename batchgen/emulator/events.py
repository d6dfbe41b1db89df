"""The SSE broadcast hub behind ``GET /api/events``: no buffering, no replay, no ids.

A notice goes only to the connections subscribed at the moment it is published.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from batchgen.emulator.model import Generation

COMPLETED = "media_generation_completed"
KEEPALIVE = b": keep-alive\n\n"


@dataclass(frozen=True)
class Completion:
    generation: Generation


@dataclass(frozen=True)
class Unrelated:
    name: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Close:
    """The app is shutting down: end the stream."""


Notice = Completion | Unrelated | Close


def frame(name: str, payload: dict[str, Any]) -> bytes:
    """One SSE event: an ``event:`` line, a single-line JSON ``data:`` line, a blank line."""
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


@dataclass(eq=False)
class Subscriber:
    origin: str  # scheme://host of the connection, used to mint result URLs
    queue: asyncio.Queue[Notice] = field(default_factory=asyncio.Queue)


class EventHub:
    def __init__(self, unrelated_every: int) -> None:
        self._subscribers: set[Subscriber] = set()
        self._unrelated_every = unrelated_every
        self._completions = 0

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def subscribe(self, origin: str) -> Subscriber:
        subscriber = Subscriber(origin)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def _broadcast(self, notice: Notice) -> None:
        for subscriber in self._subscribers:
            subscriber.queue.put_nowait(notice)

    def publish_completion(self, generation: Generation) -> None:
        """Announce a succeeded or failed generation (never a cancelled one)."""
        if generation.status not in ("succeeded", "failed"):
            raise ValueError(f"no completion event for a {generation.status} generation")
        self._broadcast(Completion(generation))
        self._completions += 1
        if self._unrelated_every and self._completions % self._unrelated_every == 0:
            self._broadcast(Unrelated("deployment_status", _deployment_payload()))

    def close_all(self) -> None:
        self._broadcast(Close())


def _deployment_payload() -> dict[str, Any]:
    return {
        "deployment_id": str(uuid.uuid4()),
        "model": "emulator-user/custom-llm",
        "status": "deploying",
        "message": "Scaling up replicas",
    }
