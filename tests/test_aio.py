"""batchgen.aio.run: asyncio.run without describing the result."""

from __future__ import annotations

import signal

from batchgen import aio


class Loud:
    """A result that records whether anything formatted it."""

    described = 0

    def __repr__(self) -> str:
        Loud.described += 1
        return "Loud()"


async def make() -> Loud:
    return Loud()


def test_the_result_is_returned_and_never_formatted() -> None:
    """aio.run returns the result without formatting it, and leaves the SIGINT handler as it found it."""
    before = signal.getsignal(signal.SIGINT)
    result = aio.run(make())
    assert isinstance(result, Loud)
    assert Loud.described == 0  # asyncio.run alone formats the main task, result included, on Python 3.11
    assert signal.getsignal(signal.SIGINT) is before
