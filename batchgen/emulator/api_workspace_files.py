"""Staging into a workspace (``POST .../workspaces/{id}/files/{dir}``) and listing what is staged
(``GET .../workspaces/{id}/changes[/{path}]``), as ``controllers/workspaces/files.rs`` (``add``,
``save_parts``) and ``controllers/workspaces/changes.rs`` answer them.

The files route streams its body: one part is held at a time, and nothing bounds the body's size.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.helpers import parse_mimetype

from batchgen.emulator.actix import query_usizes
from batchgen.emulator.api_files import content_type_for
from batchgen.emulator.api_repos import repo_of, writable_repo
from batchgen.emulator.api_workspaces import workspace_of
from batchgen.emulator.context import path_param, stall
from batchgen.emulator.multipart import MultipartRefusal, open_reader, parts, read_part
from batchgen.emulator.oxen_paths import (
    Refusal,
    components,
    extension,
    join,
    rust_debug,
    validate_and_normalize,
)
from batchgen.emulator.repos import Repo, StoredFile
from batchgen.emulator.responses import bad_request, error_response, oxen_success, state_of
from batchgen.emulator.workspaces import Workspace, stage
from batchgen.emulator.writes import finish_write

GZIP_INFLATED_CAP = 10 * 1024 * 1024  # liboxen's stream_segment_size(), STREAM_SEGMENT_SIZE
COUNTED_FIELDS = ("file", "file[]")
DEFAULT_PAGE_SIZE = 100


@dataclass(frozen=True)
class Received:
    filename: str  # the path under {dir}, as sent
    data: bytes
    content_type: str | None  # None when the part was gzip (its type says nothing of the file)


def inflate_gzip(data: bytes, cap: int = GZIP_INFLATED_CAP) -> bytes | None:
    """``decompress_gzip_capped``: the first gzip member inflated, or None when it is broken,
    truncated, or inflates past ``cap``."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(data, cap + 1)
    except zlib.error:
        return None
    return inflated if inflater.eof and len(inflated) <= cap else None


def _is_gzip(content_type: str | None) -> bool:
    if content_type is None:
        return False
    mime = parse_mimetype(content_type)
    return (mime.type, mime.subtype) == ("application", "gzip")


async def _receive(request: web.Request) -> list[Received]:
    """``save_parts``: every ``file`` / ``file[]`` part, read whole one at a time; a part that fails to
    inflate is dropped (logged, upstream), as if it had not been sent."""
    reader, form_data = await open_reader(request, form_data_only=False)
    received: list[Received] = []
    async for part in parts(reader, form_data=form_data):
        if part.name not in COUNTED_FIELDS:
            continue
        if part.filename is None:
            raise MultipartRefusal(400, "Missing hash in multipart request")
        gzipped = _is_gzip(part.content_type)
        data = await read_part(part)
        inflated = inflate_gzip(data) if gzipped else data
        if inflated is not None:
            received.append(Received(part.filename, inflated, None if gzipped else part.content_type))
    return received


def _staging_paths(directory: str, received: list[Received]) -> list[str] | web.Response:
    """``workspace_staged_path`` of each file; the first bad one refuses the whole request."""
    paths = []
    for item in received:
        path = validate_and_normalize(join(directory, item.filename))
        if isinstance(path, Refusal):
            detail = f"Invalid staging path (directory {rust_debug(directory)}, file {rust_debug(item.filename)}): {path.message}"
            return bad_request(detail)
        paths.append(path)
    return paths


async def add_files(request: web.Request) -> web.StreamResponse:
    """Stage every ``file`` / ``file[]`` part at ``{dir}/{filename}``. The answer lists each path,
    including those left out because their bytes equal the base commit's."""
    repo = writable_repo(request)
    if isinstance(repo, web.Response):
        return repo
    workspace = workspace_of(request, repo)  # before the body is read
    if isinstance(workspace, web.Response):
        return workspace
    try:
        received = await _receive(request)
    except MultipartRefusal as refusal:
        return error_response(refusal.status, "bad_request", "Bad Request", refusal.message)
    await stall(request)
    paths = _staging_paths(path_param(request, "dir"), received)
    if isinstance(paths, web.Response):
        return paths
    state = state_of(request)
    for path, item in zip(paths, received, strict=True):
        stored = StoredFile(item.data, content_type_for(item.content_type, path))
        state.counters.files_received[(path, stored.sha256)] += 1
        stage(repo, workspace, path, stored)
    state.counters.emit("staged", (workspace.id, paths))
    return await finish_write(request, oxen_success("resource_created", paths=paths))


def _starts_with(path: str, prefix: str) -> bool:
    """``Path::starts_with``: whole components only ("" is a prefix of everything)."""
    mine, theirs = components(path), components(prefix)
    return mine[: len(theirs)] == theirs


def _data_type(path: str) -> tuple[str, str]:
    """``(data_type, mime_type)`` liboxen derives for a staged entry from a path in the workspace
    directory, where files staged through these routes never are: nothing to sniff, so the extension
    alone decides (``util/fs.rs`` ``file_mime_type`` and ``datatype_from_mimetype``)."""
    suffix = (extension(path) or "").lower()
    if suffix == "md":
        return "text", "text/markdown"
    tabular = suffix in ("csv", "tsv", "parquet", "arrow", "ndjson", "jsonl")
    return ("tabular" if tabular else "binary"), "application/octet-stream"


def _entry(path: str) -> dict[str, Any]:
    """A ``MetadataEntry`` as ``RemoteStagedStatus::iter_to_meta_entry`` builds it: no hash, no commit,
    and the size of a file the workspace directory does not hold, 0."""
    data_type, mime_type = _data_type(path)
    return {
        "filename": path,
        "hash": "",
        "is_dir": False,
        "latest_commit": None,
        "resource": None,
        "size": 0,
        "data_type": data_type,
        "mime_type": mime_type,
        "extension": extension(path) or "",
        "metadata": None,
        "is_queryable": None,
    }


def _paginated(paths: list[str], page: int, page_size: int) -> dict[str, Any]:
    """``PaginatedDirEntries`` through ``util::paginate`` (page 0 reads as page 1)."""
    start = max(page - 1, 0) * page_size
    return {
        "dir": None,
        "entries": [_entry(path) for path in paths[start : start + page_size]],
        "resource": None,
        "metadata": None,
        "page_size": page_size,
        "page_number": page,
        "total_pages": -(-len(paths) // page_size),
        "total_entries": len(paths),
    }


def _added_dirs(paths: list[str]) -> dict[str, Any]:
    """``SummarizedStagedDirStats``: per directory holding staged files directly, how many, grouped
    under its first component ("" for the root); ``total_files`` is never filled in upstream."""
    per_dir: dict[str, int] = defaultdict(int)
    for path in paths:
        per_dir[path.rpartition("/")[0]] += 1
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for directory in sorted(per_dir):
        stats = {
            "path": directory,
            "num_files_staged": per_dir[directory],
            "total_files": 0,
            "status": "Added",
        }
        grouped[directory.split("/", 1)[0]].append(stats)
    return {"num_files_staged": len(paths), "total_files": 0, "paths": dict(grouped)}


def staged_view(repo: Repo, workspace: Workspace, under: str, page: int, page_size: int) -> dict[str, Any]:
    """``RemoteStagedStatus`` of the staged files under ``under``, each list in path order."""
    chosen = sorted(path for path in workspace.staged if _starts_with(path, under))
    added = [path for path in chosen if workspace.status(repo, path) == "Added"]
    modified = [path for path in chosen if workspace.status(repo, path) == "Modified"]
    return {
        "added_dirs": _added_dirs(chosen),
        "added_files": _paginated(added, page, page_size),
        "modified_files": _paginated(modified, page, page_size),
        "removed_files": _paginated([], page, page_size),
    }


async def list_changes(request: web.Request) -> web.Response:
    """``GET .../changes[/{path}]``: ``page`` / ``page_size`` (default 1 / 100) apply to each list."""
    pages = query_usizes(request.query, "page", "page_size")
    if isinstance(pages, web.Response):
        return pages
    repo = repo_of(request)
    if isinstance(repo, web.Response):
        return repo
    page = 1 if pages["page"] is None else pages["page"]
    page_size = DEFAULT_PAGE_SIZE if pages["page_size"] is None else pages["page_size"]
    if page_size == 0:
        return bad_request("page_size must be at least 1")
    workspace = workspace_of(request, repo)
    if isinstance(workspace, web.Response):
        return workspace
    under = path_param(request, "path") if "path" in request.match_info else ""
    return oxen_success("resource_found", staged=staged_view(repo, workspace, under, page, page_size))
