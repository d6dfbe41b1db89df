"""The chunked version upload Oxen's clients use for large files (``controllers/versions/chunks.rs``,
``storage/local.rs``): announce (a no-op), send byte ranges as chunks, then complete: the chunks are
joined in offset order, checked against the version id (XXH3-128), and optionally staged into a
workspace.
"""

from __future__ import annotations

import json
import re
from typing import Any

import xxhash
from aiohttp import web

from batchgen.emulator.actix import query_usizes, read_string_body
from batchgen.emulator.api_files import content_type_for
from batchgen.emulator.api_repos import writable_body, writable_repo
from batchgen.emulator.context import body_stream, path_param, stall
from batchgen.emulator.oxen_json import Field, check_struct
from batchgen.emulator.oxen_paths import components, join
from batchgen.emulator.repos import Repo, StoredFile
from batchgen.emulator.responses import (
    bad_request,
    internal_error,
    oxen_success,
    state_of,
    status_message,
)
from batchgen.emulator.workspaces import stage
from batchgen.emulator.writes import finish_write

COMPLETE_BODY_LIMIT = 20 * 1024 * 1024  # services/versions.rs: PayloadConfig on /complete only
_HEX = re.compile(r"\+?[0-9A-Fa-f]+")
_COMPLETE: dict[str, Field] = {"files": ("array", True), "workspace_id": ("string", False)}
_COMPLETED_FILE: dict[str, Field] = {
    "hash": ("string", True),
    "file_name": ("string", True),
    "dst_dir": ("string", False),
    "num_chunks": ("usize", False),
    "upload_results": ("array", False),
}


def version_hash(data: bytes) -> str:
    """A version id as liboxen writes one: XXH3-128 in lowercase hex, leading zeros dropped."""
    return format(xxhash.xxh3_128_intdigest(data), "x")


def _parse_u128_hex(text: str) -> int | str:
    """``MerkleHash::from_str`` (``u128::from_str_radix(text, 16)``), or its error message."""
    if not text:
        return "cannot parse integer from empty string"
    if not _HEX.fullmatch(text):
        return "invalid digit found in string"
    value = int(text.lstrip("+"), 16)
    return value if value < 2**128 else "number too large to fit in target type"


async def create(request: web.Request) -> web.Response:
    """``POST /versions/{hash}/create``: the server reads the body and does nothing with it; it does not
    even look the repository up."""
    text = await read_string_body(request)
    return text if isinstance(text, web.Response) else oxen_success("resource_found")


async def upload_chunk(request: web.Request) -> web.StreamResponse:
    """``PUT /versions/{hash}/chunks?offset=N``: the raw body is the chunk. A chunk already stored at
    that offset is kept and the new one ignored."""
    query = query_usizes(request.query, "offset", "size")
    if isinstance(query, web.Response):
        return query
    repo = writable_repo(request)
    if isinstance(repo, web.Response):
        return repo
    pieces = [piece async for piece in (await body_stream(request)).iter_any()]
    await stall(request)
    version, offset = path_param(request, "version_id"), query["offset"] or 0
    repo.chunks.setdefault(version, {}).setdefault(offset, b"".join(pieces))
    state = state_of(request)
    state.counters.chunks_received += 1
    state.counters.emit("chunk_stored", (version, offset))
    return await finish_write(request, oxen_success("resource_created"))


def _completed_file(text: str) -> dict[str, Any] | web.Response:
    """The one file of a ``CompleteVersionUploadRequest``, with its workspace id, or the refusal."""
    body = check_struct(_loads(text), _COMPLETE, "CompleteVersionUploadRequest", text)
    files = [] if isinstance(body, str) else body["files"]
    parsed = [check_struct(item, _COMPLETED_FILE, "CompletedFileUpload", text) for item in files]
    if isinstance(body, str) or any(isinstance(item, str) for item in parsed):
        return status_message(400, "Invalid request body")
    if len(parsed) != 1:
        return status_message(400, "Expected a single file in the request")
    (file,) = parsed
    assert isinstance(file, dict)
    if file["num_chunks"] is None and file["upload_results"] is None:
        return bad_request("Missing both num_chunks and upload_results in request")
    if file["num_chunks"] is None:
        file["num_chunks"] = len(file["upload_results"])
    return {**file, "workspace_id": body["workspace_id"]}


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None  # serde then fails on it as on any other non-struct


def _assemble(repo: Repo, version: str, expected_chunks: int) -> bytes | web.Response:
    """The chunks joined in offset order and checked against the version id; removed once they are."""
    chunks = repo.chunks.get(version)
    if chunks is None:  # none ever sent, or a repeated complete: the chunk directory is gone
        return internal_error("No such file or directory (os error 2)")
    if len(chunks) != expected_chunks:
        detail = (
            f"Number of chunks does not match expected number of chunks: {len(chunks)} != {expected_chunks}"
        )
        return status_message(400, detail)
    expected = _parse_u128_hex(version)
    if isinstance(expected, str):
        return internal_error(expected)
    data = b"".join(chunks[offset] for offset in sorted(chunks))
    actual = xxhash.xxh3_128_intdigest(data)
    if actual != expected:  # the chunks stay, as AtomicFile refuses before publishing
        return internal_error(
            f'Hash mismatch writing "versions/{version}": expected {expected:x}, got {actual:x}'
        )
    del repo.chunks[version]
    return data


def staging_path(dst_dir: str | None, file_name: str) -> str:
    """Where ``complete`` stages a file: ``dst_dir.join(file_name)``, not validated; liboxen's
    ``path_relative_to_dir`` then keeps only its plain components (``.``, ``..`` and a leading ``/``
    vanish)."""
    joined = file_name if dst_dir is None else join(dst_dir, file_name)
    return "/".join(text for kind, text in components(joined) if kind == "normal")


async def complete(request: web.Request) -> web.StreamResponse:
    """``POST /versions/{hash}/complete``: the body is text holding JSON, at most 20 MiB."""
    read = await writable_body(request, limit=COMPLETE_BODY_LIMIT)
    if isinstance(read, web.Response):
        return read
    repo, text = read
    file = _completed_file(text)
    if isinstance(file, web.Response):
        return file
    version = path_param(request, "version_id")
    data = _assemble(repo, version, file["num_chunks"])
    if isinstance(data, web.Response):
        return data
    staged_at = None
    if file["workspace_id"] is not None:
        workspace = repo.workspace(file["workspace_id"])
        if workspace is None:
            return status_message(404, f"Workspace not found: {file['workspace_id']}")
        staged_at = staging_path(file["dst_dir"], file["file_name"])
        if not staged_at:
            return internal_error(f"Failed to add file to staged db: {file['file_name']}")
        stored = StoredFile(data, content_type_for(None, staged_at))
        state_of(request).counters.files_received[(staged_at, stored.sha256)] += 1
        stage(repo, workspace, staged_at, stored)
    state_of(request).counters.emit("version_completed", (version, staged_at))
    return await finish_write(request, oxen_success("resource_found"))
