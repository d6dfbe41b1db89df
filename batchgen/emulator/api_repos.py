"""``/api/repos``: create a repository, read it, list, read and create its branches
(``controllers/repositories.rs``, ``controllers/branches.rs``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp import web

from batchgen.emulator.actix import STRING_BODY_LIMIT, read_string_body
from batchgen.emulator.api_queue import read_json_object
from batchgen.emulator.context import path_param, stall
from batchgen.emulator.oxen_json import Field, parse_struct
from batchgen.emulator.repos import DEFAULT_BRANCH, Repo
from batchgen.emulator.responses import (
    OXEN_VERSION,
    branch_not_found,
    internal_error,
    invalid_params,
    read_only,
    repo_not_found,
    state_of,
    status_message,
    success,
)

MIN_VERSION = "0.36.0"
_TABULAR = (
    "text/csv",
    "text/tab-separated-values",
    "application/jsonl",
    "application/x-ndjson",
    "application/vnd.apache.parquet",
)


async def create_repo(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    if body is None:
        return invalid_params("Request body must be a JSON object sent with Content-Type: application/json")
    namespace, name = body.get("namespace"), body.get("name")
    if not isinstance(namespace, str) or not isinstance(name, str) or not namespace or not name:
        return invalid_params("namespace and name are required")
    description = body.get("description") if isinstance(body.get("description"), str) else ""
    is_public = body.get("is_public") if isinstance(body.get("is_public"), bool) else None
    if not state_of(request).repos.create(namespace, name, description or "", is_public=is_public):
        return status_message(409, "Repo already exists.")
    repository = {
        "namespace": namespace,
        "name": name,
        "latest_commit": None,
        "min_version": MIN_VERSION,
        "storage_kind": "local",
        "merkle_node_backend": "lmdb",
    }
    return success("resource_found", repository=repository)


def _data_type(content_type: str) -> str:
    major = content_type.partition("/")[0]
    if content_type in _TABULAR:
        return "tabular"
    return major if major in ("image", "video", "audio", "text") else "binary"


def repo_of(request: web.Request) -> Repo | web.Response:
    """The repository the path names, or the 404 to answer."""
    namespace, name = request.match_info["namespace"], request.match_info["repo"]
    repo = state_of(request).repos.repo(namespace, name)
    return repo_not_found(namespace, name) if repo is None else repo


def writable_repo(request: web.Request, *, auto_create: bool = False) -> Repo | web.Response:
    """The repository a write goes to, or its 404, or the emulator's 403 for a read-only repository.
    ``auto_create``: make a missing one first when ``auto_create_repos`` is on."""
    state = state_of(request)
    if auto_create and state.config.auto_create_repos:
        state.repos.create(request.match_info["namespace"], request.match_info["repo"])
    repo = repo_of(request)
    if isinstance(repo, Repo) and repo.read_only:
        return read_only(repo.namespace, repo.name)
    return repo


async def writable_body(
    request: web.Request, *, limit: int = STRING_BODY_LIMIT, auto_create: bool = False
) -> tuple[Repo, str] | web.Response:
    """A write's repository (as `writable_repo`) and its body read as text, once any slow-response
    fault has stalled: the routes whose body is a string holding JSON."""
    repo = writable_repo(request, auto_create=auto_create)
    if isinstance(repo, web.Response):
        return repo
    text = await read_string_body(request, limit)
    if isinstance(text, web.Response):
        return text
    await stall(request)
    return repo, text


def branch_json(repo: Repo, branch: str) -> dict[str, Any]:
    """``model/branch.rs``: exactly ``name`` and ``commit_id``."""
    return {"name": branch, "commit_id": repo.branches[branch]}


async def show_repo(request: web.Request) -> web.Response:
    repo = repo_of(request)
    if isinstance(repo, web.Response):
        return repo
    files = (repo.tree(DEFAULT_BRANCH) or {}).values()
    counts = Counter(_data_type(stored.content_type) for stored in files)
    view = {
        "namespace": repo.namespace,
        "name": repo.name,
        "min_version": MIN_VERSION,
        "is_empty": repo.is_empty,
        "size": sum(len(stored.data) for stored in files),
        "branch_count": len(repo.branches),
        "data_types": [{"data_type": kind, "count": count} for kind, count in sorted(counts.items())],
    }
    return success("resource_found", oxen_version=OXEN_VERSION, repository=view)


async def list_branches(request: web.Request) -> web.Response:
    repo = repo_of(request)
    if isinstance(repo, web.Response):
        return repo
    branches = [branch_json(repo, name) for name in sorted(repo.branches)]
    return success("resource_found", oxen_version=OXEN_VERSION, branches=branches)


async def show_branch(request: web.Request) -> web.Response:
    """``{branch}`` may hold ``/``; ``%2F`` stays literal, as actix leaves it."""
    repo = repo_of(request)
    if isinstance(repo, web.Response):
        return repo
    branch = path_param(request, "branch")
    if branch not in repo.branches:
        return branch_not_found(branch)
    return success("resource_found", oxen_version=OXEN_VERSION, branch=branch_json(repo, branch))


_FROM_BRANCH: dict[str, Field] = {"new_name": ("string", True), "from_name": ("string", True)}
_FROM_COMMIT: dict[str, Field] = {"new_name": ("string", True), "commit_id": ("string", True)}
_INVALID_IN_BRANCH = ("..", "~", "^", ":", "?", "[", "*", "\\", " ", "@{")


def branch_name_refusal(name: str) -> str | None:
    """``RefManager::is_invalid_branch_name`` (git-check-ref-format, loosely): ``/`` is allowed."""
    if any(part in name for part in _INVALID_IN_BRANCH) or name == "@" or name.endswith("."):
        return f"'{name}' is not a valid branch name."
    return None


async def create_branch(request: web.Request) -> web.Response:
    """``{"new_name", "from_name"}`` or ``{"new_name", "commit_id"}`` (any Content-Type); an existing
    new_name is returned as is when made from a branch."""
    repo = writable_repo(request)
    if isinstance(repo, web.Response):
        return repo
    text = await read_string_body(request)
    if isinstance(text, web.Response):
        return text
    from_branch = parse_struct(text, _FROM_BRANCH, "BranchNewFromBranchName")
    from_commit = parse_struct(text, _FROM_COMMIT, "BranchNewFromCommitId")
    if isinstance(from_branch, dict):
        new_name, source = from_branch["new_name"], from_branch["from_name"]
        if new_name in repo.branches:
            return success("resource_found", oxen_version=OXEN_VERSION, branch=branch_json(repo, new_name))
        if source not in repo.branches:
            return status_message(404, "resource_not_found")
        commit_id = repo.branches[source]
    elif isinstance(from_commit, dict):
        new_name, commit_id = from_commit["new_name"], from_commit["commit_id"]
        if commit_id not in repo.commits:
            return internal_error(f"Could not find commit: {commit_id}")
    else:
        return status_message(400, "Invalid request body")
    refusal = branch_name_refusal(new_name)
    if refusal is None and new_name in repo.branches:
        refusal = f"Branch already exists: {new_name}"
    if refusal is not None:
        return internal_error(refusal)
    state_of(request).repos.create_branch(repo.namespace, repo.name, new_name, commit_id)
    return success("resource_created", oxen_version=OXEN_VERSION, branch=branch_json(repo, new_name))
