"""``/api/repos/{ns}/{repo}/commits/...``: paginated history of a revision or a path
(``controllers/commits.rs`` ``history``), one commit."""

from __future__ import annotations

import math

from aiohttp import web

from batchgen.emulator.actix import query_usizes
from batchgen.emulator.api_repos import repo_of
from batchgen.emulator.repos import Commit
from batchgen.emulator.resources import resolve
from batchgen.emulator.responses import (
    OXEN_VERSION,
    path_does_not_exist,
    path_not_found,
    path_not_in_revision,
    status_message,
    success,
)

DEFAULT_PAGE_SIZE = 100  # liboxen's constants::DEFAULT_PAGE_SIZE
_USIZE_MAX = 2**64 - 1


def _total_pages(total: int, page_size: int, *, by_path: bool) -> int:
    """``ceil(total / page_size)`` as liboxen computes it: a branch's history calls a page size of 0
    no pages; a path's divides by it as a float, and Rust saturates the infinity to ``usize::MAX``."""
    if page_size:
        return math.ceil(total / page_size)
    return _USIZE_MAX if by_path and total else 0


def _page(commits: list[Commit], page: int, page_size: int, *, by_path: bool) -> web.Response:
    """Page 0 reads as page 1 but is reported as 0, as liboxen does."""
    start = max(page - 1, 0) * page_size
    return success(
        "resource_found",
        oxen_version=OXEN_VERSION,
        commits=[c.as_json() for c in commits[start : start + page_size]],
        page_number=page,
        page_size=page_size,
        total_entries=len(commits),
        total_pages=_total_pages(len(commits), page_size, by_path=by_path),
    )


async def history(request: web.Request) -> web.Response:
    """``{resource}`` is a branch (possibly with ``/``) or commit id, optionally followed by a path;
    newest first."""
    pages = query_usizes(request.query, "page", "page_size")
    if isinstance(pages, web.Response):
        return pages
    page = 1 if pages["page"] is None else pages["page"]
    page_size = DEFAULT_PAGE_SIZE if pages["page_size"] is None else pages["page_size"]
    repo = repo_of(request)
    if isinstance(repo, web.Response):
        return repo
    if repo.is_empty:  # whatever the resource names: Pagination::empty
        body = {"commits": [], "page_number": page, "page_size": page_size, "total_entries": 0}
        return success("resource_found", oxen_version=OXEN_VERSION, total_pages=1, **body)
    resource = request.match_info["resource"]
    resolved = resolve(repo, resource)
    if resolved is None:
        return path_does_not_exist(resource)
    if resolved.commit_id is None:  # a workspace: it has no commit of its own
        return status_message(404, "resource_not_found")
    if not resolved.path:
        return _page(repo.history(resolved.commit_id), page, page_size, by_path=False)
    if repo.node(resolved.commit_id, resolved.path) is None:
        return path_not_in_revision(resolved.path, resolved.commit_id)
    return _page(repo.history(resolved.commit_id, resolved.path), page, page_size, by_path=True)


async def show_commit(request: web.Request) -> web.Response:
    repo = repo_of(request)
    if isinstance(repo, web.Response):
        return repo
    commit = repo.commits.get(request.match_info["commit_id"])
    if commit is None:
        return path_not_found(request.match_info["commit_id"])
    return success("resource_found", oxen_version=OXEN_VERSION, commit=commit.as_json())
