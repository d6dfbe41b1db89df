"""``/api/ai/generations``: paged history with cost aggregates, and one generation's details."""

from __future__ import annotations

import math
from decimal import Decimal

from aiohttp import web

from batchgen.emulator.api_queue import parse_filters
from batchgen.emulator.pricing import money_text
from batchgen.emulator.responses import invalid_params, not_found, origin_of, state_of, success
from batchgen.emulator.views import history_row

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def _int_param(request: web.Request, name: str, default: int, high: int | None) -> int | str:
    """The positive integer query parameter ``name``, or the reason it is invalid."""
    raw = request.query.get(name)
    if raw is None:
        return default
    value = int(raw) if raw.strip().isdigit() else 0
    if 1 <= value <= (high or value):
        return value
    return f"{name} must be an integer between 1 and {high}" if high else f"{name} must be an integer >= 1"


async def list_history(request: web.Request) -> web.Response:
    state = state_of(request)
    filters = parse_filters(request, active_by_default=False)
    page = _int_param(request, "page", 1, None)
    page_size = _int_param(request, "page_size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    for problem in (filters, page, page_size):
        if isinstance(problem, str):
            return invalid_params(problem)
    assert not isinstance(filters, str) and isinstance(page, int) and isinstance(page_size, int)
    page_size = min(page_size, state.config.history_page_size_cap or page_size)
    page = 1 if state.config.history_ignores_page else page
    matching = sorted(
        state.queue.select(filters),
        key=lambda gen: (gen.enqueued_at, gen.seq),
        reverse=state.config.history_newest_first,
    )
    charged = [gen.cost for gen in matching if gen.cost is not None]
    window = matching[(page - 1) * page_size : page * page_size]
    origin, username = origin_of(request), state.config.username
    return web.json_response(
        {
            "count": len(window),
            "generations": [
                history_row(gen, state.result_url(gen, origin), username, state.echoed_defaults(gen))
                for gen in window
            ],
            "page_number": page,
            "page_size": page_size,
            "total_cost": money_text(sum(charged, Decimal(0))) if charged else None,
            "total_entries": len(matching),
            "total_pages": math.ceil(len(matching) / page_size),
        }
    )


async def get_details(request: web.Request) -> web.Response:
    state = state_of(request)
    gen = state.queue.get(request.match_info["generation_id"])
    if gen is None:
        return not_found()
    row = history_row(
        gen, state.result_url(gen, origin_of(request)), state.config.username, state.echoed_defaults(gen)
    )
    return success("resource_found", generation=row)
