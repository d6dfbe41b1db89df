"""``/api/repos/{ns}/{repo}/file/...``: multipart upload as one commit (PUT), file at a branch or commit (GET)."""

from __future__ import annotations

import contextlib
import mimetypes
import posixpath

from aiohttp import web
from multidict import MultiDictProxy

from batchgen.emulator.api_repos import repo_of
from batchgen.emulator.repos import Repo, StoredFile, Tree
from batchgen.emulator.responses import (
    OXEN_VERSION,
    bad_request,
    branch_not_found,
    path_not_found,
    read_only,
    server_error,
    state_of,
)

FormValue = str | bytes | bytearray | web.FileField


def _content_type(upload: web.FileField, destination: str) -> str:
    declared = upload.content_type
    if declared and declared != "application/octet-stream":
        return declared
    return mimetypes.guess_type(destination)[0] or "application/octet-stream"


def _unsafe(path: str) -> bool:
    return path.startswith("/") or any(part in ("", ".", "..") for part in path.split("/"))


def _text_fields(form: MultiDictProxy[FormValue]) -> dict[str, str] | str:
    values = {name: form.get(name) for name in ("message", "name", "email")}
    for name, value in values.items():
        if not isinstance(value, str) or not value.strip():
            return f"Missing form field: {name}"
    return {name: str(value) for name, value in values.items()}


def _parts(form: MultiDictProxy[FormValue]) -> tuple[list[web.FileField], bool] | str:
    """The file parts, and whether they go into the directory {path}; or why the form is refused."""
    singles, many = form.getall("file", []), form.getall("files[]", [])
    if singles and many:
        return "Ambiguous multipart payload: use either `file` or `files[]`, not both"
    uploads = singles or many
    if not uploads:
        return "Missing file data: expected `file` or `files[]` multipart parts"
    files = [item for item in uploads if isinstance(item, web.FileField)]
    if len(files) != len(uploads):
        return "File parts must be sent as files, with a filename"
    return files, bool(many) or len(singles) > 1


def _plan(form: MultiDictProxy[FormValue], repo: Repo, branch: str, path: str) -> Tree | str:
    """Destination path -> file for every part of the form, or why the upload is refused."""
    parts = _parts(form)
    if isinstance(parts, str):
        return parts
    files, into_directory = parts
    into_directory = into_directory or repo.is_dir(branch, path)
    if path and _unsafe(path):
        return f"Invalid target path: path traversal is not allowed: {path}"
    if not into_directory and not path:
        return "Invalid target path: expected a full file path for `file` uploads"
    if into_directory and path in (repo.tree(branch) or {}):
        return f"Target path must be a directory: {path}"
    planned: Tree = {}
    for item in files:
        name = posixpath.basename(item.filename or "")
        if not name or _unsafe(name):
            return f"Invalid uploaded file: {item.filename!r}"
        destination = posixpath.join(path, name) if into_directory else path
        if repo.file_ancestor(branch, destination) is not None:
            return f"Target path must be a directory: {path}"
        planned[destination] = StoredFile(item.file.read(), _content_type(item, destination))
    return planned


async def upload(request: web.Request) -> web.StreamResponse:
    state, info = state_of(request), request.match_info
    branch, path = info["branch"], info["path"].strip("/")
    if state.config.auto_create_repos:
        state.repos.create(info["namespace"], info["repo"])
    repo = repo_of(request)
    if isinstance(repo, web.Response):
        return repo
    if repo.read_only:
        return read_only(repo.namespace, repo.name)
    if branch not in repo.branches and not repo.is_empty:
        return branch_not_found(branch)
    form = await request.post()
    planned, fields = _plan(form, repo, branch, path), _text_fields(form)
    if isinstance(planned, str) or isinstance(fields, str):
        return bad_request(planned if isinstance(planned, str) else str(fields))
    commit = state.repos.commit(
        repo.namespace,
        repo.name,
        branch,
        planned,
        message=fields["message"],
        author=fields["name"],
        email=fields["email"],
    )
    state.counters.count_commit(len(planned))
    state.counters.emit("committed", commit.id)
    if state.faults.should_cut_upload() and request.transport is not None:
        request.transport.close()  # committed, but the client never hears about it
        state.counters.emit("upload_answered", commit.id)
        return web.Response()
    failed_status = state.faults.upload_error_after_commit()
    if failed_status is not None:  # committed, but the client is told it failed
        state.counters.emit("upload_answered", commit.id)
        return server_error(failed_status)
    response = web.json_response(
        {
            "status": "success",
            "status_message": "resource_created",
            "oxen_version": OXEN_VERSION,
            "commit": commit.as_json(),
        }
    )
    # Written here so that "upload_answered" fires once the client can have the answer.
    with contextlib.suppress(ConnectionResetError):
        await response.prepare(request)
        await response.write_eof()
    state.counters.emit("upload_answered", commit.id)
    return response


async def get_file(request: web.Request) -> web.Response:
    """The file at a branch (its newest version) or at a commit id."""
    repo = repo_of(request)
    if isinstance(repo, web.Response):
        return repo
    revision, path = request.match_info["branch"], request.match_info["path"].strip("/")
    tree = repo.tree(revision)
    stored = None if tree is None else tree.get(path)
    if stored is None:
        return path_not_found(f"{revision}/{path}")
    return web.Response(body=stored.data, headers={"Content-Type": stored.content_type})
