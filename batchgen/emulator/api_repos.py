"""``/api/repos``: create a repository, read it, list, read and create its branches."""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp import web

from batchgen.emulator.api_queue import read_json_object
from batchgen.emulator.repos import DEFAULT_BRANCH, Repo
from batchgen.emulator.responses import (
    OXEN_VERSION,
    bad_request,
    branch_not_found,
    error_response,
    invalid_params,
    path_not_found,
    read_only,
    repo_not_found,
    state_of,
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
    if not state_of(request).repos.create(namespace, name, description or ""):
        return error_response(
            409,
            "resource_already_exists",
            "The resource already exists",
            f"Repository {namespace}/{name} already exists",
        )
    repository = {
        "namespace": namespace,
        "name": name,
        "description": description,
        "is_public": True,
        "latest_commit": None,
        "min_version": MIN_VERSION,
    }
    return success("resource_created", repository=repository)


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


def branch_json(repo: Repo, branch: str) -> dict[str, Any]:
    commit_id = repo.branches[branch]
    return {"name": branch, "commit_id": commit_id, "commit": repo.commits[commit_id].as_json()}


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
    repo = repo_of(request)
    if isinstance(repo, web.Response):
        return repo
    branch = request.match_info["branch"]
    if branch not in repo.branches:
        return branch_not_found(branch)
    return success("resource_found", oxen_version=OXEN_VERSION, branch=branch_json(repo, branch))


async def create_branch(request: web.Request) -> web.Response:
    """``{"new_name", "from_name"}`` or ``{"new_name", "commit_id"}``; an existing new_name is returned as is."""
    repo = repo_of(request)
    if isinstance(repo, web.Response):
        return repo
    if repo.read_only:
        return read_only(repo.namespace, repo.name)
    body = await read_json_object(request)
    new_name = None if body is None else body.get("new_name")
    source = None if body is None else body.get("from_name", body.get("commit_id"))
    if not isinstance(new_name, str) or not isinstance(source, str) or not new_name or "/" in new_name:
        return bad_request("Invalid request body")
    if new_name in repo.branches:
        return success("resource_found", oxen_version=OXEN_VERSION, branch=branch_json(repo, new_name))
    from_branch = body is not None and "from_name" in body
    commit_id = repo.branches.get(source) if from_branch else source
    if commit_id is None or commit_id not in repo.commits:
        return branch_not_found(source) if from_branch else path_not_found(source)
    state_of(request).repos.create_branch(repo.namespace, repo.name, new_name, commit_id)
    return success("resource_created", oxen_version=OXEN_VERSION, branch=branch_json(repo, new_name))
