"""Error envelopes and the request context (state, origin) shared by the route handlers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from batchgen.emulator.state import EmulatorState

STATE = web.AppKey("batchgen_emulator_state", EmulatorState)

OXEN_VERSION = "0.36.0"  # what the repository routes report as the server version
INVALID_PARAMS_TITLE = "Invalid parameters supplied, please check your request and try again."


def state_of(request: web.Request) -> EmulatorState:
    return request.app[STATE]


def origin_of(request: web.Request) -> str:
    """scheme://host[:port] as the client addressed us; used to mint result URLs."""
    return f"{request.scheme}://{request.host}"


def envelope(kind: str, title: str, detail: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "title": title}
    if detail is not None:
        error["detail"] = detail
    return {"error": error, "status": "error", "status_message": kind}


def error_response(
    status: int, kind: str, title: str, detail: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(envelope(kind, title, detail), status=status, headers=headers)


def not_found() -> web.Response:
    return error_response(404, "resource_not_found", "The requested resource could not be found")


def unauthenticated() -> web.Response:
    return error_response(401, "unauthenticated", "Unauthenticated. Please provide a valid API key.")


def invalid_params(detail: str) -> web.Response:
    return error_response(400, "invalid_params", INVALID_PARAMS_TITLE, detail)


def message_error(status: int, message: str) -> web.Response:
    """The second documented error format: ``{"error": {"message": ...}}``."""
    return web.json_response({"error": {"message": message}}, status=status)


def model_not_found(model_id: str) -> web.Response:
    return message_error(404, f"Model not found: {model_id}")


def insufficient_credits() -> web.Response:
    return error_response(402, "insufficient_credits", "Insufficient credits", "Insufficient credits")


def rate_limited(retry_after: int) -> web.Response:
    return error_response(
        429,
        "rate_limited",
        "Rate limit exceeded",
        f"Too many requests, retry after {retry_after} seconds.",
        headers={"Retry-After": str(retry_after)},
    )


def server_error(status: int) -> web.Response:
    return error_response(status, "unknown_error", "An unexpected error occurred, please try again later.")


def forbidden(reason: str) -> web.Response:
    return error_response(403, "forbidden", reason)


def method_not_allowed() -> web.Response:
    return error_response(405, "method_not_allowed", "Method not allowed")


def bad_request(detail: str) -> web.Response:
    """oxen-server's 400 for a request it cannot carry out (repository routes)."""
    return error_response(400, "bad_request", "Bad Request", detail)


def repo_not_found(namespace: str, name: str) -> web.Response:
    """oxen-server's 404 for a repository that does not exist."""
    body = {
        "status": "error",
        "status_message": "resource_not_found",
        "oxen_version": OXEN_VERSION,
        "status_description": f"Repository '{namespace}/{name}' not found",
    }
    return web.json_response(body, status=404)


def branch_not_found(branch: str) -> web.Response:
    return error_response(
        404, "resource_not_found", "Branch does not exist", f"Could not find branch: {branch}"
    )


def path_not_found(path: str) -> web.Response:
    return error_response(404, "resource_not_found", "Resource not found", f"Could not find path: {path}")


def read_only(namespace: str, name: str) -> web.Response:
    return error_response(
        403,
        "forbidden",
        "You do not have write access to this repository",
        f"The API key may read {namespace}/{name} but not write to it",
    )


def success(status_message: str, **fields: Any) -> web.Response:
    return web.json_response({"status": "success", "status_message": status_message, **fields})
