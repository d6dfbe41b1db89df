"""Reading the provider's paginated history (`GET /api/ai/generations`) back to a moment: every row
enqueued since then, whatever order its pages come in and whatever size the server makes them.

The order of the listing is undocumented, and a server may serve fewer rows a page than asked (a
smaller cap) or ignore `page` altogether. So what a page shows decides, before any page count:

- newest first: read on until a page reaches back past the moment (often the first page does);
- oldest first: read backwards from the last page until one does;
- no visible order, or no moment to reach (the provider's clock is unknown): read every page.

A page is the last one when `total_pages` says so, or when it is empty or shorter than the page size
the answer gives. A page whose rows are those of a page already read means the server ignores `page`:
reading stops there. At most HISTORY_MAX_PAGES pages are read; a search that needs more, or that pages
that repeat cut short, fails with HistoryUnreadable rather than guess.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from batchgen.errors import HistoryUnreadable

__all__ = ["HISTORY_MAX_PAGES", "HISTORY_PAGE_SIZE", "Page", "enqueued_before", "read_since"]

HISTORY_PAGE_SIZE = 1000  # the documented maximum
HISTORY_MAX_PAGES = 200  # pages read for one search: past this, a search gives up rather than guess


@dataclass(frozen=True, slots=True)
class Page:
    """One answer of the history: its rows, and what it says of the listing (None: it does not say)."""

    rows: list[dict[str, Any]]
    total_pages: int | None = None
    page_size: int | None = None


PageReader = Callable[[int], Awaitable[Page]]


async def read_since(
    read_page: PageReader, since: float | None, *, max_pages: int = HISTORY_MAX_PAGES
) -> list[dict[str, Any]]:
    """Every row the history holds that was enqueued at or after `since` (None: every row)."""
    search = _Search(read_page, since, max_pages)
    first = await search.read(1)
    order = _time_order(first.rows)
    if since is not None and order == "newest-first" and _reaches_before(first.rows, since):
        pass  # the first page already reaches back past the moment: nothing older can be ours
    elif order == "oldest-first" and first.total_pages is not None and first.total_pages > 1:
        for number in range(first.total_pages, 1, -1):
            page = await search.read(number)
            if since is not None and _reaches_before(page.rows, since):
                break
    else:
        page, number = first, 1
        while not _is_last(page, number):
            number += 1
            page = await search.read(number)
            if since is not None and order == "newest-first" and _reaches_before(page.rows, since):
                break
    return [row for row in search.rows if not enqueued_before(row, since)]


class _Search:
    """The pages read so far, the rule against reading too many, and the check for repeated pages."""

    def __init__(self, read_page: PageReader, since: float | None, max_pages: int) -> None:
        self._read_page = read_page
        self._since = since
        self._max_pages = max_pages
        self._seen: dict[frozenset[str], int] = {}  # a page's generation ids -> its number
        self._page_size = 0  # rows a page, as the first answer that says so says
        self.reads = 0
        self.rows: list[dict[str, Any]] = []

    async def read(self, number: int) -> Page:
        if self.reads >= self._max_pages:
            size = f" of {self._page_size} rows" if self._page_size else ""
            raise HistoryUnreadable(
                f"the provider's history would take more than {self._max_pages} pages{size} to read back "
                f"{self._to_where()}; refusing to guess"
            )
        self.reads += 1
        page = await self._read_page(number)
        ids = frozenset(str(row.get("generation_id")) for row in page.rows)
        if ids and ids in self._seen:
            raise HistoryUnreadable(
                f"the provider's history answered page {number} with the rows of page {self._seen[ids]} "
                f"(it ignores `page`), so it cannot be read back {self._to_where()}; refusing to guess"
            )
        self._seen.setdefault(ids, number)
        self._page_size = self._page_size or page.page_size or len(page.rows)
        self.rows.extend(page.rows)
        return page

    def _to_where(self) -> str:
        if self._since is None:
            return "to its start (the provider's clock is unknown: its answers carry no Date header)"
        return "to the submissions looked for"


def _is_last(page: Page, number: int) -> bool:
    if not page.rows:
        return True
    if page.total_pages is not None:
        return number >= page.total_pages
    return page.page_size is not None and len(page.rows) < page.page_size


def page_of(answer: Any, rows: list[dict[str, Any]]) -> Page:
    """A Page from a history answer's envelope (`total_pages`, `page_size`) and its rows."""
    envelope = answer if isinstance(answer, Mapping) else {}
    return Page(rows, _count(envelope.get("total_pages")), _count(envelope.get("page_size")))


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _enqueued_at(row: Mapping[str, Any]) -> float | None:
    value = row.get("enqueued_at")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def enqueued_before(row: Mapping[str, Any], since: float | None) -> bool:
    """True when the row says it was enqueued before `since` (never when either is unknown)."""
    at = _enqueued_at(row)
    return since is not None and at is not None and at < since


def _reaches_before(rows: Iterable[Mapping[str, Any]], since: float) -> bool:
    return any(enqueued_before(row, since) for row in rows)


def _time_order(rows: list[dict[str, Any]]) -> str | None:
    """'newest-first' or 'oldest-first' when a page's enqueue times say so; None when they cannot."""
    times = [t for t in (_enqueued_at(row) for row in rows) if t is not None]
    if len(times) < 2 or len(times) < len(rows):
        return None
    pairs = list(itertools.pairwise(times))
    if all(a >= b for a, b in pairs):
        return "newest-first"
    if all(a <= b for a, b in pairs):
        return "oldest-first"
    return None
