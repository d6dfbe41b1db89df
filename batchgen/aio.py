"""The interpreter around batchgen's work: running a coroutine from synchronous code, and pausing the
cyclic garbage collector for a start-up phase."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["no_gc_pauses", "run"]

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coro)`, with the result handed back outside the main task.

    When asyncio.run restores the SIGINT handler it replaced, Python 3.11's `signal.signal` tries to
    read the old handler (a partial holding the main task) as an enum; the failed lookup formats the
    task's repr, and a finished task's repr includes its result. For a 100,000-job plan that repr took
    4 s. A main task whose result is None costs nothing to describe.
    """
    import asyncio

    box: list[T] = []

    async def main() -> None:
        box.append(await coro)

    asyncio.run(main())
    return box[0]


@contextlib.contextmanager
def no_gc_pauses() -> Iterator[None]:
    """The cyclic garbage collector off for a start-up phase (restored after): loading, planning and
    journaling a large run allocate hundreds of thousands of objects and free none, so the collector's
    passes over them are pure cost (a sixth of the time to the first POST of a 10,000-job run)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
