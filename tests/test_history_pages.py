"""Reading the history back to a moment from pages a server shapes as it likes: smaller than asked,
without a page count, repeated (a server that ignores `page`), in any order."""

from __future__ import annotations

import math
from typing import Any

import pytest

from batchgen.client.history import Page, read_since
from batchgen.errors import HistoryUnreadable


def rows(count: int, newest: int) -> list[dict[str, Any]]:
    """`count` rows, newest first, one a second, the newest enqueued at `newest`."""
    return [{"generation_id": f"g{newest - i}", "enqueued_at": newest - i} for i in range(count)]


class Server:
    """A history of `total` rows served `size` a page (newest first unless `oldest_first`)."""

    def __init__(
        self,
        total: int,
        size: int,
        *,
        oldest_first: bool = False,
        ignores_page: bool = False,
        says_pages: bool = True,
        says_size: bool = True,
    ) -> None:
        self.all = rows(total, 10_000)[:: -1 if oldest_first else 1]
        self.size, self.ignores_page = size, ignores_page
        self.says_pages, self.says_size = says_pages, says_size
        self.read: list[int] = []

    async def page(self, number: int) -> Page:
        self.read.append(number)
        start = 0 if self.ignores_page else (number - 1) * self.size
        pages = math.ceil(len(self.all) / self.size) if self.says_pages else None
        return Page(self.all[start : start + self.size], pages, self.size if self.says_size else None)


async def test_a_first_page_that_reaches_back_ends_the_search_whatever_the_page_count() -> None:
    """10 rows a page and 25,000 rows (2,500 pages): the first page reaches back past the moment, so
    it is the only one read; the page count never matters."""
    server = Server(25_000, 10)
    found = await read_since(server.page, 10_000 - 5)
    assert [r["generation_id"] for r in found] == [f"g{10_000 - i}" for i in range(6)]
    assert server.read == [1]


@pytest.mark.parametrize("says_pages", [True, False])
async def test_pages_smaller_than_asked_are_read_on_until_one_reaches_back(says_pages: bool) -> None:
    """A server capping pages at 10 rows (saying so in page_size, with or without total_pages): pages
    are read until one reaches back past the moment, not stopped at the first "short" page."""
    server = Server(5_000, 10, says_pages=says_pages)
    found = await read_since(server.page, 10_000 - 34)
    assert len(found) == 35
    assert server.read == [1, 2, 3, 4]


async def test_oldest_first_pages_are_read_backwards_from_the_last() -> None:
    """Oldest first with 500 pages of 10: the last page, then the one before, reach the moment."""
    server = Server(5_000, 10, oldest_first=True)
    found = await read_since(server.page, 10_000 - 14)
    assert len(found) == 15
    assert server.read == [1, 500, 499]


@pytest.mark.parametrize("oldest_first", [False, True])
async def test_a_server_that_ignores_page_is_caught_at_the_first_repeat_never_looped(
    oldest_first: bool,
) -> None:
    """Page 2 (or the "last" page) answers page 1's rows: the search stops at once and says why,
    instead of reading the same rows 200 times or taking page 1 for the end of the history."""
    server = Server(5_000, 10, oldest_first=oldest_first, ignores_page=True)
    with pytest.raises(HistoryUnreadable, match="ignores `page`"):
        await read_since(server.page, 10_000 - 50)
    assert len(server.read) == 2


async def test_a_search_that_needs_more_pages_than_the_limit_says_so() -> None:
    """When the moment lies further back than the page limit, the search fails rather than guess."""
    server = Server(5_000, 10)
    with pytest.raises(HistoryUnreadable, match="more than 5 pages of 10 rows"):
        await read_since(server.page, 10_000 - 100, max_pages=5)
    assert server.read == [1, 2, 3, 4, 5]


async def test_an_unknown_moment_reads_every_page_to_the_end() -> None:
    """Without the provider's time of the submission (no Date header), every row may be ours: all
    pages are read, the last one known by total_pages, or by a short or empty page without it."""
    for says_pages in (True, False):
        server = Server(95, 10, says_pages=says_pages)
        assert len(await read_since(server.page, None)) == 95
        assert server.read == list(range(1, 11))
