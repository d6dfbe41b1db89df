"""The aiohttp application: routes, the auth/fault/counting gateway, lifecycle hooks."""

from __future__ import annotations

import asyncio
import email.utils
import hmac
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from functools import cached_property

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
    api_versions,
    api_workspace_files,
    api_workspaces,
)
from batchgen.emulator.actix import path_params, plain, route_regex
from batchgen.emulator.clock import Clock
from batchgen.emulator.config import EmulatorConfig
from batchgen.emulator.context import BODY_PREFETCHED, RAW_PARAMS, ROUTE_KEY, STALL_SECONDS
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
    # The handler reads its own body (streamed, or with oxen-server's limits) and serves the
    # slow-response stall itself once it has (context.stall); the gateway must not read it first.
    own_body: bool = False

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        return route_regex(self.path)


def _keyed(method: str, path: str, handler: Handler) -> Route:
    """A repository route that needs the key (workspaces, versions)."""
    return Route(method, path, handler, Auth.REQUIRED, Faults.OPT_IN)


def _write(method: str, path: str, handler: Handler) -> Route:
    """A repository write route: it needs the key and reads its own body."""
    return Route(method, path, handler, Auth.REQUIRED, Faults.OPT_IN, own_body=True)


REPO = "/api/repos/{namespace}/{repo}"
REPO_FILE = REPO + "/file/{branch}/{path:.*}"
WORKSPACE = REPO + "/workspaces/{workspace_id}"
VERSION = REPO + "/versions/{version_id}"
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
    Route("GET", REPO + "/branches/{branch:.*}", api_repos.show_branch, Auth.OPTIONAL, Faults.OPT_IN),
    Route("GET", REPO + "/commits/history/{resource:.+}", api_commits.history, Auth.OPTIONAL, Faults.OPT_IN),
    Route("GET", REPO + "/commits/{commit_id}", api_commits.show_commit, Auth.OPTIONAL, Faults.OPT_IN),
    _write("PUT", REPO_FILE, api_files.upload),
    Route("GET", REPO_FILE, api_files.get_file, Auth.NONE, Faults.OPT_IN, head=True),
    Route("GET", REPO + "/files/{path:.*}", api_downloads.download, Auth.NONE, Faults.NONE, head=True),
    *(_write(method, REPO + "/workspaces", api_workspaces.get_or_create) for method in ("PUT", "POST")),
    _keyed("GET", REPO + "/workspaces", api_workspaces.list_workspaces),
    _write("DELETE", REPO + "/workspaces", api_workspaces.clear_workspaces),
    _keyed("GET", WORKSPACE, api_workspaces.get_workspace),
    _write("DELETE", WORKSPACE, api_workspaces.delete_workspace),
    _write("POST", WORKSPACE + "/files/{dir:.*}", api_workspace_files.add_files),
    _keyed("GET", WORKSPACE + "/changes", api_workspace_files.list_changes),
    _keyed("GET", WORKSPACE + "/changes/{path:.*}", api_workspace_files.list_changes),
    _keyed("POST", WORKSPACE + "/validate", api_workspaces.validate),
    *(
        _write("POST", WORKSPACE + f"/{verb}/{{branch:.*}}", api_workspaces.commit)
        for verb in ("merge", "commit")
    ),
    _keyed("GET", WORKSPACE + "/merge/{branch:.*}", api_workspaces.mergeability),
)
VERSION_ROUTES = (  # left out with serve_version_uploads=False
    _keyed("POST", VERSION + "/create", api_versions.create),
    _write("PUT", VERSION + "/chunks", api_versions.upload_chunk),
    _write("POST", VERSION + "/complete", api_versions.complete),
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
    request: web.Request, state: EmulatorState, key: str, route: Route
) -> web.Response | None:
    opt_in = route.faults is Faults.OPT_IN
    delay = state.faults.delay_for(key, opt_in=opt_in)
    if delay and route.own_body:
        request[STALL_SECONDS] = delay
    elif delay:
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
    cap = state.config.max_request_bytes
    if cap is not None and await _over_proxy_cap(request, cap):
        state.faults.count("proxy_413")
        response: web.StreamResponse = plain(413, "413 Request Entity Too Large")
    else:
        response = await _gate(request, handler, state, key)
    entry.answered(response.status, response.headers.get("Retry-After"))
    return response


async def _over_proxy_cap(request: web.Request, cap: int) -> bool:
    """Whether the body is larger than the proxy in front allows. A body of unknown length is read
    (as a buffering proxy would) and handed on from memory (context.body_stream)."""
    if request.content_length is not None or not request.body_exists:
        return (request.content_length or 0) > cap
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return True
    request[BODY_PREFETCHED] = True
    return len(body) > cap


async def _gate(
    request: web.Request, handler: Handler, state: EmulatorState, key: str | None
) -> web.StreamResponse:
    route = request.app[POLICIES].get((key or "").replace("HEAD ", "GET ", 1))
    if key is None or route is None:
        exception = request.match_info.http_exception
        return method_not_allowed() if exception is not None and exception.status == 405 else not_found()
    if not _authorized(request, route.auth):
        return unauthenticated()
    request[ROUTE_KEY] = key
    request[RAW_PARAMS] = path_params(route.pattern, request.rel_url.raw_path)
    if route.faults is not Faults.NONE:
        fault = await _injected_fault(request, state, key, route)
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
    for route in (*ROUTES, *(VERSION_ROUTES if state.config.serve_version_uploads else ())):
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
