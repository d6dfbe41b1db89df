"""Counters that tests and benchmarks read: what the emulator was asked and what it served."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Listener = Callable[[str, Any], None]
"""A test hook: called synchronously as ``listener(event, detail)`` from the emulator's event loop.

Events: ``"request"`` (detail: the ``LoggedRequest``, as the request reaches the gateway, before its
key is checked), ``"enqueued"`` (detail: the new generation ids, created and counted, before the
answer is written) and ``"enqueue_answered"`` (detail: the same ids, once the answer was written to
the socket, or the connection was cut by the enqueue-cut fault), ``"committed"`` (detail: the commit id of a
file upload, made and counted, before the answer is written) and ``"upload_answered"`` (detail: the same
id, once the answer was written or the upload-cut fault closed the connection). A listener must not block.
"""


@dataclass
class LoggedRequest:
    """One request as the gateway saw it (recorded only while ``Counters.request_log`` is a list)."""

    at: float  # time.monotonic() when it reached the gateway
    route: str  # "METHOD /route/template", or "METHOD <unmatched>"
    path: str  # the path, without the query string
    range: str | None = None  # its Range header, if any
    authorized: bool = False  # whether it carried an Authorization header (its value is not kept)
    status: int | None = None  # set when the handler returned (a stream: when it ended); None if it raised
    retry_after: str | None = None  # the Retry-After header of the answer, if any
    answered_at: float | None = None  # time.monotonic() when the handler returned

    def answered(self, status: int, retry_after: str | None) -> None:
        self.status, self.retry_after, self.answered_at = status, retry_after, time.monotonic()


def canonical_body(body: Any) -> str:
    """The key under which identical enqueue bodies are counted."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Counters:
    requests: Counter[str] = field(default_factory=Counter)  # "METHOD /route/template" -> count
    enqueue_requests: int = 0  # POST /api/ai/queue calls that created generations
    generations_enqueued: int = 0
    enqueued_by_body: Counter[str] = field(default_factory=Counter)  # canonical body -> generations
    downloads: int = 0
    bytes_served: int = 0  # result-download body bytes actually written
    uploads: int = 0  # files stored through PUT .../file/...
    commits: int = 0  # commits those uploads made
    sse_connections: int = 0
    events_sent: int = 0  # media_generation_completed frames written, summed over connections
    unrelated_events_sent: int = 0
    keepalives_sent: int = 0
    faults: Counter[str] = field(default_factory=Counter)  # fault kind -> times injected
    # Test hooks, left out of snapshot(): set request_log to [] to record every request in arrival
    # order (off by default, so long benchmarks do not grow it); listeners get emit()'s events.
    request_log: list[LoggedRequest] | None = field(default=None, repr=False, compare=False)
    listeners: list[Listener] = field(default_factory=list, repr=False, compare=False)

    def log_request(
        self, route: str, path: str, range_header: str | None, authorized: bool = False
    ) -> LoggedRequest:
        """Record a request's arrival (kept only while request_log is a list) and tell the listeners."""
        entry = LoggedRequest(time.monotonic(), route, path, range_header, authorized)
        if self.request_log is not None:
            self.request_log.append(entry)
        self.emit("request", entry)
        return entry

    def emit(self, event: str, detail: Any = None) -> None:
        """Call every listener with ``(event, detail)``."""
        for listener in list(self.listeners):
            listener(event, detail)

    def count_enqueue(self, body: Any, generations: int) -> None:
        self.enqueue_requests += 1
        self.generations_enqueued += generations
        self.enqueued_by_body[canonical_body(body)] += generations

    def count_commit(self, files: int) -> None:
        self.commits += 1
        self.uploads += files

    def enqueued_for(self, body: Any) -> int:
        """Generations enqueued with exactly this body (key order does not matter)."""
        return self.enqueued_by_body[canonical_body(body)]

    def snapshot(self) -> dict[str, Any]:
        """A plain, independent copy: counters as dicts, totals as ints."""
        return {
            "requests": dict(self.requests),
            "enqueue_requests": self.enqueue_requests,
            "generations_enqueued": self.generations_enqueued,
            "enqueued_by_body": dict(self.enqueued_by_body),
            "downloads": self.downloads,
            "bytes_served": self.bytes_served,
            "uploads": self.uploads,
            "commits": self.commits,
            "sse_connections": self.sse_connections,
            "events_sent": self.events_sent,
            "unrelated_events_sent": self.unrelated_events_sent,
            "keepalives_sent": self.keepalives_sent,
            "faults": dict(self.faults),
        }
