"""``/api/repos/{ns}/{repo}/commits/...``: paginated history of a revision or a path, one commit."""

from __future__ import annotations

import math

from aiohttp import web

from batchgen.emulator.api_repos import repo_of
from batchgen.emulator.responses import OXEN_VERSION, bad_request, path_not_found, success

DEFAULT_PAGE_SIZE = 100  # liboxen's default for paginated lists


def _positive(request: web.Request, name: str, default: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    return int(raw) if raw.isdigit() and int(raw) >= 1 else None


async def history(request: web.Request) -> web.Response:
    """``{resource}`` is ``{branch or commit id}`` or ``{branch or commit id}/{path}``; newest first."""
    repo = repo_of(request)
    if isinstance(repo, web.Response):
        return repo
    page, page_size = _positive(request, "page", 1), _positive(request, "page_size", DEFAULT_PAGE_SIZE)
    if page is None or page_size is None:
        return bad_request("page and page_size must be integers >= 1")
    resource = request.match_info["resource"].strip("/")
    revision, _, path = resource.partition("/")
    commit_id = repo.resolve(revision)
    if commit_id is None and not repo.is_empty:
        return path_not_found(resource)
    commits = [] if commit_id is None else repo.history(commit_id, path)
    chunk = commits[(page - 1) * page_size : page * page_size]
    return success(
        "resource_found",
        oxen_version=OXEN_VERSION,
        commits=[c.as_json() for c in chunk],
        page_number=page,
        page_size=page_size,
        total_entries=len(commits),
        total_pages=math.ceil(len(commits) / page_size),
    )


async def show_commit(request: web.Request) -> web.Response:
    repo = repo_of(request)
    if isinstance(repo, web.Response):
        return repo
    commit = repo.commits.get(request.match_info["commit_id"])
    if commit is None:
        return path_not_found(request.match_info["commit_id"])
    return success("resource_found", oxen_version=OXEN_VERSION, commit=commit.as_json())
