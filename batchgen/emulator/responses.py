"""Error envelopes and the request context (state, origin) shared by the route handlers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from batchgen.emulator.state import EmulatorState

STATE = web.AppKey("batchgen_emulator_state", EmulatorState)

OXEN_VERSION = "0.54.0"  # what the repository routes report as the server version (oxen-server's)
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
    """oxen-server's ``OxenHttpError::BadRequest``: a 400 for a request it cannot carry out."""
    return error_response(400, "bad_request", "Bad Request", detail)


def repo_not_found(namespace: str, name: str) -> web.Response:
    """oxen-server's 404 for a repository that does not exist."""
    return described_not_found(f"Repository '{namespace}/{name}' not found")


def described_not_found(description: str) -> web.Response:
    """``StatusMessageDescription::not_found``: a 404 whose ``status_description`` says what is missing."""
    body = {
        "status": "error",
        "status_message": "resource_not_found",
        "oxen_version": OXEN_VERSION,
        "status_description": description,
    }
    return web.json_response(body, status=404)


def workspace_not_found(identifier: str) -> web.Response:
    return described_not_found(f"Workspace not found: {identifier}")


def status_message(status: int, message: str, *, error: bool = True, **fields: Any) -> web.Response:
    """``StatusMessage``: ``{"status", "status_message", "oxen_version"}`` (plus ``fields``), the
    shape oxen-server gives most answers, errors included (the message is then free text)."""
    body = {
        "status": "error" if error else "success",
        "status_message": message,
        "oxen_version": OXEN_VERSION,
    }
    return web.json_response({**body, **fields}, status=status)


def oxen_success(message: str, **fields: Any) -> web.Response:
    """A 200 ``StatusMessage`` (``resource_found``, ``resource_created``...) with ``fields`` beside it."""
    return status_message(200, message, error=False, **fields)


def branch_not_found(branch: str) -> web.Response:
    """``OxenError::BranchNotFound`` as liboxen raises it for a branch looked up by name."""
    return error_response(
        404,
        "resource_not_found",
        "Branch does not exist",
        f"Could not find branch: Branch '{branch}' not found",
    )


def path_not_found(path: str) -> web.Response:
    return error_response(404, "resource_not_found", "Resource not found", f"Could not find path: {path}")


def path_does_not_exist(path: str) -> web.Response:
    """``OxenError::PathDoesNotExist``: a resource that resolves to nothing, a file that is not there."""
    return error_response(404, "resource_not_found", "Path does not exist", f"Could not find path: {path}")


def path_not_in_revision(path: str, revision: str) -> web.Response:
    return error_response(
        404, "resource_not_found", "Path not in revision", f"{path} does not exist in {revision}."
    )


def no_changes() -> web.Response:
    """``OxenError::NoChanges`` as ``errors.rs`` maps it (``PUT .../file`` with nothing new)."""
    detail = "Nothing staged differs from the parent commit, so there is nothing to commit."
    body = {**envelope("no_changes", "No changes to commit", detail), "status_message": "bad_request"}
    return web.json_response(body, status=422)


def internal_error(title: str) -> web.Response:
    """The catch-all 500 of oxen-server's ``errors.rs``: an error with no arm of its own."""
    return web.json_response(
        {
            "error": {"type": "internal_server_error", "title": title},
            "status": "error",
            "status_message": "internal_server_error",
        },
        status=500,
    )


def read_only(namespace: str, name: str) -> web.Response:
    return error_response(
        403,
        "forbidden",
        "You do not have write access to this repository",
        f"The API key may read {namespace}/{name} but not write to it",
    )


def success(status_message: str, **fields: Any) -> web.Response:
    return web.json_response({"status": "success", "status_message": status_message, **fields})
