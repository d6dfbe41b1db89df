"""The aiohttp application: routes, the auth/fault/counting gateway, lifecycle hooks."""

from __future__ import annotations

import asyncio
import email.utils
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from aiohttp import web

from batchgen.emulator import (
    api_commits,
    api_downloads,
    api_events,
    api_files,
    api_history,
    api_models,
    api_queue,
    api_repos,
)
from batchgen.emulator.clock import Clock
from batchgen.emulator.config import EmulatorConfig
from batchgen.emulator.responses import (
    STATE,
    method_not_allowed,
    not_found,
    rate_limited,
    server_error,
    state_of,
    unauthenticated,
)
from batchgen.emulator.state import EmulatorState

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Auth(Enum):
    REQUIRED = "required"
    OPTIONAL = "optional"  # no key is fine; a wrong key is not
    NONE = "none"


class Faults(Enum):
    """Which 429 / 5xx / slow-response fault knobs reach a route."""

    API = "api"  # every one, unless the knob's *_routes list leaves the route out
    OPT_IN = "opt-in"  # only a knob whose *_routes list names the route (repositories)
    NONE = "none"  # none (result downloads have knobs of their own)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    auth: Auth
    faults: Faults
    head: bool = False


REPO = "/api/repos/{namespace}/{repo}"
REPO_FILE = REPO + "/file/{branch}/{path:.*}"
ROUTES = (
    Route("POST", "/api/ai/queue", api_queue.enqueue, Auth.REQUIRED, Faults.API),
    Route("GET", "/api/ai/queue", api_queue.list_active, Auth.REQUIRED, Faults.API),
    Route("GET", "/api/ai/queue/{generation_id}", api_queue.get_one, Auth.REQUIRED, Faults.API),
    Route("DELETE", "/api/ai/queue/{generation_id}", api_queue.cancel, Auth.REQUIRED, Faults.API),
    Route("GET", "/api/ai/generations", api_history.list_history, Auth.REQUIRED, Faults.API),
    Route("GET", "/api/ai/generations/{generation_id}", api_history.get_details, Auth.REQUIRED, Faults.API),
    Route("GET", "/api/ai/models", api_models.list_models, Auth.OPTIONAL, Faults.API),
    Route("GET", "/api/ai/models/search", api_models.search_models, Auth.OPTIONAL, Faults.API),
    Route("GET", "/api/ai/models/{model_id:.+}", api_models.get_model, Auth.OPTIONAL, Faults.API),
    Route("GET", "/api/events", api_events.events, Auth.REQUIRED, Faults.API),
    Route("POST", "/api/repos", api_repos.create_repo, Auth.REQUIRED, Faults.OPT_IN),
    Route("GET", REPO, api_repos.show_repo, Auth.OPTIONAL, Faults.OPT_IN),
    Route("GET", REPO + "/branches", api_repos.list_branches, Auth.OPTIONAL, Faults.OPT_IN),
    Route("POST", REPO + "/branches", api_repos.create_branch, Auth.REQUIRED, Faults.OPT_IN),
    Route("GET", REPO + "/branches/{branch}", api_repos.show_branch, Auth.OPTIONAL, Faults.OPT_IN),
    Route("GET", REPO + "/commits/history/{resource:.+}", api_commits.history, Auth.OPTIONAL, Faults.OPT_IN),
    Route("GET", REPO + "/commits/{commit_id}", api_commits.show_commit, Auth.OPTIONAL, Faults.OPT_IN),
    Route("PUT", REPO_FILE, api_files.upload, Auth.REQUIRED, Faults.OPT_IN),
    Route("GET", REPO_FILE, api_files.get_file, Auth.NONE, Faults.OPT_IN, head=True),
    Route("GET", REPO + "/files/{path:.*}", api_downloads.download, Auth.NONE, Faults.NONE, head=True),
)

POLICIES = web.AppKey("batchgen_emulator_policies", dict[str, Route])


def route_key(request: web.Request) -> str | None:
    """The matched route as "METHOD /template" (HEAD counted as itself), or None if nothing matched."""
    if request.match_info.http_exception is not None:
        return None
    resource = request.match_info.route.resource
    return None if resource is None else f"{request.method} {resource.canonical}"


def _authorized(request: web.Request, auth: Auth) -> bool:
    header = request.headers.get("Authorization")
    if auth is Auth.NONE or (auth is Auth.OPTIONAL and header is None):
        return True
    scheme, _, key = (header or "").partition(" ")
    expected = state_of(request).config.api_key
    return scheme.lower() == "bearer" and hmac.compare_digest(key.strip().encode(), expected.encode())


async def _injected_fault(
    request: web.Request, state: EmulatorState, key: str, opt_in: bool
) -> web.Response | None:
    delay = state.faults.delay_for(key, opt_in=opt_in)
    if delay:
        # Read the body first, as a server that is slow to *process* a request would have: a client
        # that gives up during the stall then finds its request carried out all the same. A form is
        # read through post(), which keeps it for the handler (its raw stream can be read only once).
        if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            await request.post()
        else:
            await request.read()
        await asyncio.sleep(delay)
    retry_after = state.faults.retry_after_for(key, opt_in=opt_in)
    if retry_after is not None:
        return rate_limited(retry_after)
    status = state.faults.server_error_for(key, opt_in=opt_in)
    return None if status is None else server_error(status)


@web.middleware
async def gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count (and, when asked, log) the request, check its key, inject API faults, then handle it."""
    state, key = state_of(request), route_key(request)
    name = key or f"{request.method} <unmatched>"
    state.counters.requests[name] += 1
    entry = state.counters.log_request(
        name, request.path, request.headers.get("Range"), "Authorization" in request.headers
    )
    response = await _gate(request, handler, state, key)
    entry.answered(response.status, response.headers.get("Retry-After"))
    return response


async def _gate(
    request: web.Request, handler: Handler, state: EmulatorState, key: str | None
) -> web.StreamResponse:
    route = request.app[POLICIES].get((key or "").replace("HEAD ", "GET ", 1))
    if key is None or route is None:
        exception = request.match_info.http_exception
        return method_not_allowed() if exception is not None and exception.status == 405 else not_found()
    if not _authorized(request, route.auth):
        return unauthenticated()
    if route.faults is not Faults.NONE:
        fault = await _injected_fault(request, state, key, route.faults is Faults.OPT_IN)
        if fault is not None:
            return fault
    return await handler(request)


async def _date_header(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer's `Date` is the emulator's clock (as a real server's is its own), not aiohttp's."""
    response.headers["Date"] = email.utils.formatdate(state_of(request).clock.time(), usegmt=True)


async def _engine(app: web.Application) -> AsyncIterator[None]:
    app[STATE].engine.start()
    yield
    app[STATE].engine.stop()


async def _close_streams(app: web.Application) -> None:
    app[STATE].hub.close_all()


def build_app(state: EmulatorState) -> web.Application:
    app = web.Application(middlewares=[gateway], client_max_size=state.config.max_upload_bytes)
    app[STATE] = state
    policies: dict[str, Route] = {}
    for route in ROUTES:
        registered = app.router.add_route(route.method, route.path, route.handler)
        policies[f"{route.method} {registered.resource.canonical}"] = route  # type: ignore[union-attr]
        if route.head:
            app.router.add_route("HEAD", route.path, route.handler)
    app[POLICIES] = policies
    app.cleanup_ctx.append(_engine)
    app.on_shutdown.append(_close_streams)
    app.on_response_prepare.append(_date_header)
    return app


def create_app(config: EmulatorConfig | None = None, *, clock: Clock | None = None) -> web.Application:
    """A fresh emulator as an aiohttp app (for ``aiohttp_client`` and friends)."""
    return build_app(EmulatorState(config or EmulatorConfig(), clock))


def state_of_app(app: web.Application) -> EmulatorState:
    """The live state behind an app made by ``create_app``."""
    return app[STATE]
