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

A listener must not block. Events:

- ``"request"``: the ``LoggedRequest``, as the request reaches the gateway, before its key is checked.
- ``"enqueued"``: the new generation ids, created and counted, before the answer is written; then
  ``"enqueue_answered"``: the same ids, once the answer was written or the enqueue-cut fault closed
  the connection.

Repository writes emit theirs once the work is done, before the answer is written (or cut):

- ``"workspace_created"``: the new workspace's id.
- ``"staged"``: ``(workspace_id, [repository paths])``, the paths a ``POST .../files`` answer lists
  (staged, or left out because their bytes equal the base commit's).
- ``"chunk_stored"``: ``(hash, offset)`` of a chunk stored (or kept: a chunk at that offset was
  there already).
- ``"version_completed"``: ``(hash, staged path or None)`` of an assembled chunked upload.
- ``"committed"``: the commit id of a ``PUT .../file`` or workspace commit.
- ``"workspace_deleted"``: the id of a workspace that is gone: deleted, cleared, or committed
  while unnamed.
- ``"upload_answered"``: the commit id again, once a commit's answer was written, or the
  connection was cut by the write-cut fault.
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
    uploads: int = 0  # files the commits below carried (PUT parts, or the paths a workspace staged)
    commits: int = 0  # commits made by PUT .../file/... or by a workspace commit
    # (repository path, sha256) -> times a request carried these bytes for that path: PUT parts,
    # workspace file parts, completed chunked versions staged into a workspace; unchanged ones too.
    files_received: Counter[tuple[str, str]] = field(default_factory=Counter)
    chunks_received: int = 0  # PUT .../versions/{hash}/chunks requests answered 200
    workspaces_created: int = 0
    workspaces_deleted: int = 0  # deleted, cleared, or committed while unnamed
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
        """A plain, independent copy that JSON can hold: counters as dicts (``files_received`` as a
        list of ``{"path", "sha256", "times"}``), totals as ints."""
        return {
            "requests": dict(self.requests),
            "enqueue_requests": self.enqueue_requests,
            "generations_enqueued": self.generations_enqueued,
            "enqueued_by_body": dict(self.enqueued_by_body),
            "downloads": self.downloads,
            "bytes_served": self.bytes_served,
            "uploads": self.uploads,
            "commits": self.commits,
            "files_received": [  # JSON-safe: one row per (path, sha256)
                {"path": path, "sha256": sha256, "times": times}
                for (path, sha256), times in sorted(self.files_received.items())
            ],
            "chunks_received": self.chunks_received,
            "workspaces_created": self.workspaces_created,
            "workspaces_deleted": self.workspaces_deleted,
            "sse_connections": self.sse_connections,
            "events_sent": self.events_sent,
            "unrelated_events_sent": self.unrelated_events_sent,
            "keepalives_sent": self.keepalives_sent,
            "faults": dict(self.faults),
        }
