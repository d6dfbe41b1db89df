"""The fake queue: generation records and their state transitions. Pure: no I/O, no asyncio.

Timestamps come from an injected clock; *when* transitions happen is decided by ``engine.py``.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, get_args

from batchgen.emulator.catalog import MediaType
from batchgen.emulator.clock import Clock
from batchgen.emulator.media import ResultBlob

Status = Literal["queued", "processing", "succeeded", "failed", "cancelled"]
STATUSES: tuple[str, ...] = get_args(Status)
ACTIVE: tuple[str, ...] = ("queued", "processing")


@dataclass
class Generation:
    """One generation. Read it freely; only the queue changes it."""

    generation_id: str
    model_id: str
    media_type: MediaType
    request: dict[str, Any]  # the enqueue body, as received
    namespace: str
    repo: str
    directory: str
    price: Decimal  # charged if it succeeds
    enqueued_at: float
    seq: int
    status: Status = "queued"
    ready: bool = False  # its queue wait is over: it starts as soon as a slot is free
    started_at: float | None = None
    completed_at: float | None = None
    error_message: str | None = None
    cost: Decimal | None = None
    result: ResultBlob | None = None
    result_path: str | None = None
    fetched_references: list[str] = field(default_factory=list)
    history: list[Status] = field(default_factory=lambda: ["queued"])  # every status it has been in

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def result_sha256(self) -> str | None:
        return None if self.result is None else self.result.sha256


@dataclass(frozen=True)
class Filters:
    """The row filters shared by ``GET /api/ai/queue`` and ``GET /api/ai/generations``."""

    namespace: str
    model: str | None = None
    status: str | None = None
    media_type: str | None = None
    repo: str | None = None
    folder: str | None = None
    active_only: bool = False

    def matches(self, gen: Generation) -> bool:
        wanted = (
            (self.namespace, gen.namespace),
            (self.model, gen.model_id),
            (self.status, gen.status),
            (self.media_type, gen.media_type),
            (self.repo, gen.repo),
            (self.folder, gen.directory),
        )
        if any(want is not None and want != have for want, have in wanted):
            return False
        return gen.active or not self.active_only


class FakeQueue:
    """All generations, plus running totals so that every transition costs O(log n), not O(n)."""

    def __init__(self, clock: Clock, concurrency: int) -> None:
        self._clock = clock
        self._concurrency = concurrency
        self._rows: dict[str, Generation] = {}
        self._active: dict[str, Generation] = {}  # queued + processing, in enqueue order
        self._ready: list[tuple[int, str]] = []  # heap of (seq, id): queue wait over, not started
        self._processing = 0
        self._committed = {"queued": Decimal(0), "processing": Decimal(0)}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._rows)

    def next_seq(self) -> int:
        """A number that orders generations by enqueue time (ties impossible)."""
        self._seq += 1
        return self._seq

    def now(self) -> float:
        return self._clock.time()

    def add(self, gen: Generation) -> None:
        self._rows[gen.generation_id] = gen
        self._active[gen.generation_id] = gen
        self._committed["queued"] += gen.price

    def get(self, generation_id: str) -> Generation | None:
        return self._rows.get(generation_id)

    def all(self) -> list[Generation]:
        return list(self._rows.values())

    def select(self, filters: Filters) -> list[Generation]:
        """Matching rows in enqueue order."""
        rows = self._active if filters.active_only else self._rows
        return [gen for gen in rows.values() if filters.matches(gen)]

    @property
    def processing_count(self) -> int:
        return self._processing

    @property
    def active_count(self) -> int:
        return len(self._active)

    def committed(self, *, include_queued: bool) -> Decimal:
        """The price of rows that may still be charged: processing ones, and queued ones if asked."""
        return self._committed["processing"] + (self._committed["queued"] if include_queued else 0)

    def mark_ready(self, gen: Generation) -> None:
        gen.ready = True
        heapq.heappush(self._ready, (gen.seq, gen.generation_id))

    def take_startable(self) -> list[Generation]:
        """Remove and return the oldest ready queued rows that fit in the free slots; start them all."""
        taken: list[Generation] = []
        while self._ready and self._processing + len(taken) < self._concurrency:
            gen = self._rows[heapq.heappop(self._ready)[1]]
            if gen.status == "queued":  # cancelled rows are skipped lazily
                taken.append(gen)
        return taken

    def start(self, gen: Generation) -> None:
        self._expect(gen, "queued")
        self._move(gen, "processing")
        gen.started_at = self.now()

    def succeed(self, gen: Generation, result: ResultBlob, path: str) -> None:
        self._expect(gen, "processing")
        self._move(gen, "succeeded")
        gen.cost, gen.result, gen.result_path = gen.price, result, path

    def fail(self, gen: Generation, message: str) -> None:
        self._expect(gen, "processing")
        self._move(gen, "failed")
        gen.error_message = message

    def force_terminal(
        self,
        gen: Generation,
        status: Status,
        error_message: str | None = None,
        result: ResultBlob | None = None,
        path: str | None = None,
    ) -> None:
        """Move a fresh queued row straight to a terminal status (seeding older rows for tests)."""
        self._expect(gen, "queued")
        if status in ACTIVE:
            raise ValueError(f"not a terminal status: {status}")
        self._move(gen, status)
        gen.started_at = gen.completed_at = gen.enqueued_at
        gen.error_message = error_message
        if status == "succeeded":
            gen.cost, gen.result, gen.result_path = gen.price, result, path

    def cancel(self, gen: Generation) -> bool:
        """Cancel an active row; False (and no change) for a terminal one."""
        if not gen.active:
            return False
        self._move(gen, "cancelled")
        return True

    def _move(self, gen: Generation, status: Status) -> None:
        """Change status, keeping the running totals, the active set and the history in step."""
        old = gen.status  # always queued or processing: terminal rows never move
        self._committed[old] -= gen.price
        self._processing += (status == "processing") - (old == "processing")
        if status in ACTIVE:
            self._committed[status] += gen.price
        else:
            self._active.pop(gen.generation_id, None)
            gen.completed_at = self.now()
        gen.status = status
        gen.history.append(status)

    @staticmethod
    def _expect(gen: Generation, status: Status) -> None:
        if gen.status != status:
            raise RuntimeError(f"generation {gen.generation_id} is {gen.status}, expected {status}")
