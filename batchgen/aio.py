"""Running a coroutine from synchronous code."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run"]

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
