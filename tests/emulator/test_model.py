"""The pure fake queue: transitions, running totals and start order, without any server."""

from __future__ import annotations

from decimal import Decimal

import pytest

from batchgen.emulator import ManualClock
from batchgen.emulator.media import make_result
from batchgen.emulator.model import FakeQueue, Filters, Generation


def make(queue: FakeQueue, price: str = "1.00") -> Generation:
    seq = queue.next_seq()
    gen = Generation(
        generation_id=f"g{seq}",
        model_id="m",
        media_type="video",
        request={},
        namespace="me",
        repo="r",
        directory="d",
        price=Decimal(price),
        enqueued_at=queue.now(),
        seq=seq,
    )
    queue.add(gen)
    return gen


def test_start_order_and_concurrency() -> None:
    """Ready rows start oldest first, never more than the concurrency limit at once."""
    queue = FakeQueue(ManualClock(), concurrency=2)
    rows = [make(queue) for _ in range(4)]
    for gen in reversed(rows):
        queue.mark_ready(gen)
    started = queue.take_startable()
    assert started == rows[:2]
    for gen in started:
        queue.start(gen)
    assert queue.take_startable() == []
    queue.cancel(rows[2])  # a cancelled ready row is skipped
    queue.fail(rows[0], "boom")
    assert queue.take_startable() == [rows[3]]


def test_running_totals_follow_transitions() -> None:
    """Committed prices, processing and active counts track every transition."""
    clock = ManualClock(start=100.0)
    queue = FakeQueue(clock, concurrency=8)
    first, second = make(queue, "1.12"), make(queue, "0.05")
    assert queue.committed(include_queued=True) == Decimal("1.17")
    assert queue.committed(include_queued=False) == 0
    queue.start(first)
    assert (queue.processing_count, queue.active_count) == (1, 2)
    assert queue.committed(include_queued=False) == Decimal("1.12")
    clock.advance(5)
    queue.succeed(first, make_result("video", "g1"), "/p")
    queue.cancel(second)
    assert (queue.processing_count, queue.active_count) == (0, 0)
    assert queue.committed(include_queued=True) == 0
    assert (first.cost, first.started_at, first.completed_at) == (Decimal("1.12"), 100.0, 105.0)
    assert first.history == ["queued", "processing", "succeeded"]
    assert second.history == ["queued", "cancelled"] and second.cost is None


def test_invalid_transitions_are_refused() -> None:
    """A row can only succeed or fail from processing, start from queued, and cancel while active."""
    queue = FakeQueue(ManualClock(), concurrency=1)
    gen = make(queue)
    with pytest.raises(RuntimeError):
        queue.fail(gen, "x")
    queue.start(gen)
    with pytest.raises(RuntimeError):
        queue.start(gen)
    queue.fail(gen, "x")
    assert queue.cancel(gen) is False
    assert gen.status == "failed"


def test_filters() -> None:
    """active_only lists queued/processing rows; other fields must all match."""
    queue = FakeQueue(ManualClock(), concurrency=1)
    done, active = make(queue), make(queue)
    queue.start(done)
    queue.fail(done, "x")
    assert queue.select(Filters(namespace="me", active_only=True)) == [active]
    assert queue.select(Filters(namespace="me")) == [done, active]
    assert queue.select(Filters(namespace="me", status="failed", model="m", repo="r", folder="d")) == [done]
    assert queue.select(Filters(namespace="other")) == []
