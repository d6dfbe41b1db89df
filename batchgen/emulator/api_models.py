"""``/api/ai/models``: the model registry (list, search, one model)."""

from __future__ import annotations

from aiohttp import web

from batchgen.emulator.catalog import ModelSpec
from batchgen.emulator.responses import model_not_found, state_of


def _listing(specs: list[ModelSpec]) -> web.Response:
    return web.json_response({"object": "list", "data": [spec.public for spec in specs]})


async def list_models(request: web.Request) -> web.Response:
    catalog = state_of(request).catalog
    developer = request.query.get("developer_name")
    return _listing(catalog.by_developer(developer) if developer else catalog.all())


async def search_models(request: web.Request) -> web.Response:
    return _listing(state_of(request).catalog.search(request.query.get("search", "")))


async def get_model(request: web.Request) -> web.Response:
    model_id = request.match_info["model_id"]
    state = state_of(request)
    override = state.model_overrides.get(model_id)
    if override is not None:  # a test asked for this exact answer, however broken
        return web.Response(body=override, content_type="application/json")
    spec = state.catalog.get(model_id)
    return model_not_found(model_id) if spec is None else web.json_response(spec.public)
