"""``/api/ai/queue``: enqueue, get one, list active, cancel."""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import web

from batchgen.emulator.model import STATUSES, Filters
from batchgen.emulator.responses import (
    insufficient_credits,
    invalid_params,
    message_error,
    model_not_found,
    not_found,
    origin_of,
    state_of,
)
from batchgen.emulator.state import InsufficientCredits
from batchgen.emulator.views import queue_row

MEDIA_TYPES = ("image", "video")
COUNT_ERROR = "num_generations must be an integer between 1 and 4"


async def read_json_object(request: web.Request) -> dict[str, Any] | None:
    """The JSON object body, or None; like the real server, only a JSON Content-Type is parsed."""
    if request.content_type != "application/json" and not request.content_type.endswith("+json"):
        return None
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def parse_count(value: Any) -> int | None:
    if value is None:
        return 1
    valid = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4
    return value if valid else None


def _namespace(body: dict[str, Any], username: str) -> str | None:
    value = body.get("target_namespace")
    if value is None:
        return username
    return value if isinstance(value, str) and value.strip() else None


async def enqueue(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    body = await read_json_object(request)
    if body is None:
        return invalid_params("Request body must be a JSON object sent with Content-Type: application/json")
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        return invalid_params("model is required")
    spec = state.catalog.get(model_id)
    if spec is None:
        return model_not_found(model_id)
    if spec.media_type is None:
        return message_error(400, ":unsupported_media_type")
    count, namespace = parse_count(body.get("num_generations")), _namespace(body, state.config.username)
    if count is None:
        return invalid_params(COUNT_ERROR)
    if namespace is None:
        return invalid_params("target_namespace must be a non-empty string")
    try:
        generations = state.enqueue(spec, body, count, namespace)
    except InsufficientCredits:
        return insufficient_credits()
    ids = [g.generation_id for g in generations]
    state.counters.emit("enqueued", ids)
    if state.faults.should_cut_enqueue() and request.transport is not None:
        request.transport.close()  # created and counted, but the client never hears about it
        state.counters.emit("enqueue_answered", ids)
        return web.Response()
    response = web.json_response(
        {"generations": [{"generation_id": g.generation_id, "status": g.status} for g in generations]}
    )
    # Written here rather than by aiohttp after we return, so that the "enqueue_answered" test hook
    # fires once the client can have the answer (prepare and write_eof are no-ops when repeated).
    with contextlib.suppress(ConnectionResetError):  # the client gave up (e.g. a slow-response fault)
        await response.prepare(request)
        await response.write_eof()
    state.counters.emit("enqueue_answered", ids)
    return response


async def get_one(request: web.Request) -> web.Response:
    state = state_of(request)
    gen = state.queue.get(request.match_info["generation_id"])
    if gen is None:
        return not_found()
    return web.json_response(
        queue_row(gen, state.result_url(gen, origin_of(request)), state.echoed_defaults(gen))
    )


def parse_filters(request: web.Request, *, active_by_default: bool) -> Filters | str:
    """The shared row filters from the query string, or the reason they are invalid."""
    query = request.query
    status, media_type = query.get("status"), query.get("media_type")
    if status is not None and status not in STATUSES:
        return f"status must be one of: {', '.join(STATUSES)}"
    if media_type is not None and media_type not in MEDIA_TYPES:
        return f"media_type must be one of: {', '.join(MEDIA_TYPES)}"
    return Filters(
        namespace=query.get("namespace") or state_of(request).config.username,
        model=query.get("model"),
        status=status,
        media_type=media_type,
        repo=query.get("repo"),
        folder=query.get("folder"),
        active_only=active_by_default and status is None,
    )


async def list_active(request: web.Request) -> web.Response:
    state = state_of(request)
    filters = parse_filters(request, active_by_default=True)
    if isinstance(filters, str):
        return invalid_params(filters)
    origin = origin_of(request)
    selected = state.queue.select(filters)[: state.config.queue_list_cap]
    rows = [queue_row(gen, state.result_url(gen, origin), state.echoed_defaults(gen)) for gen in selected]
    return web.json_response({"count": len(rows), "generations": rows})


async def cancel(request: web.Request) -> web.Response:
    state = state_of(request)
    generation_id = request.match_info["generation_id"]
    gen = state.queue.get(generation_id)
    if gen is None:
        return not_found()
    state.engine.cancel(gen)  # a no-op on terminal rows
    return web.json_response({"status": "success", "generation_id": generation_id})
