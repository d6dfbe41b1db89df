"""Counters that tests and benchmarks read: what the emulator was asked and what it served."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


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
    uploads: int = 0
    sse_connections: int = 0
    events_sent: int = 0  # media_generation_completed frames written, summed over connections
    unrelated_events_sent: int = 0
    keepalives_sent: int = 0
    faults: Counter[str] = field(default_factory=Counter)  # fault kind -> times injected

    def count_enqueue(self, body: Any, generations: int) -> None:
        self.enqueue_requests += 1
        self.generations_enqueued += generations
        self.enqueued_by_body[canonical_body(body)] += generations

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
            "sse_connections": self.sse_connections,
            "events_sent": self.events_sent,
            "unrelated_events_sent": self.unrelated_events_sent,
            "keepalives_sent": self.keepalives_sent,
            "faults": dict(self.faults),
        }
