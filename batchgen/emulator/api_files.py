"""``/api/repos/{ns}/{repo}/file/{resource}``: the multipart upload committed as one commit (PUT), and
a file at a branch, commit or workspace (GET, HEAD), as ``controllers/file.rs`` does them.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from enum import Enum

from aiohttp import web

from batchgen.emulator.api_repos import branch_name_refusal, repo_of
from batchgen.emulator.context import carries_key, path_param, stall
from batchgen.emulator.oxen_paths import Refusal, components, normalize_upload_path
from batchgen.emulator.repos import Repo, StoredFile, Tree, unchanged_paths
from batchgen.emulator.resources import resolve
from batchgen.emulator.responses import (
    OXEN_VERSION,
    bad_request,
    branch_not_found,
    internal_error,
    no_changes,
    path_does_not_exist,
    read_only,
    repo_not_found,
    state_of,
    success,
)
from batchgen.emulator.upload_form import UploadedFile, UploadForm, read_upload_form
from batchgen.emulator.writes import finish_write


class Mode(Enum):
    SINGLE_FILE = "single file"  # the `file` part, stored at {path}
    DIRECTORY_FROM_FILE = "file into directory"  # the `file` part, into the existing directory {path}
    DIRECTORY_FROM_FILES_ARRAY = "files[] into directory"


@dataclass(frozen=True)
class Target:
    """Where a PUT commits: the branch, its head (None in an empty repository), and ``{path}``."""

    branch: str
    head: str | None
    path: str


def content_type_for(declared: str | None, destination: str) -> str:
    """The declared type of a part, unless it says nothing (octet-stream): then one guessed from the
    destination's name (an emulator choice: oxen-server sniffs the bytes)."""
    if declared and declared.split(";")[0].strip() != "application/octet-stream":
        return declared
    return mimetypes.guess_type(destination)[0] or "application/octet-stream"


def _mode(form: UploadForm, target_is_directory: bool) -> Mode | Refusal:
    """``resolve_upload_mode``."""
    if form.file is not None and form.files:
        return Refusal("Ambiguous multipart payload: use either `file` or `files[]`, not both")
    if form.file is not None:
        return Mode.DIRECTORY_FROM_FILE if target_is_directory else Mode.SINGLE_FILE
    if form.files:
        return Mode.DIRECTORY_FROM_FILES_ARRAY
    return Refusal("Missing file data: expected `file` or `files[]` multipart parts")


def _destinations(form: UploadForm, mode: Mode, path: str) -> list[tuple[str, UploadedFile]] | Refusal:
    """``build_files_from_upload_parts``: each part with the repository path it is written to."""
    if mode is Mode.SINGLE_FILE:
        if not path:
            return Refusal("Invalid target path: expected a full file path for `file` uploads")
        target = normalize_upload_path(path, allow_empty=False, label="target path")
        assert form.file is not None
        return target if isinstance(target, Refusal) else [(target, form.file)]
    directory = normalize_upload_path(path, allow_empty=True, label="target directory")
    if isinstance(directory, Refusal):
        return directory
    uploads = [form.file] if mode is Mode.DIRECTORY_FROM_FILE and form.file else form.files
    planned: list[tuple[str, UploadedFile]] = []
    for upload in uploads:
        name = normalize_upload_path(upload.filename, allow_empty=False, label="uploaded file")
        if isinstance(name, Refusal):
            return name
        planned.append((f"{directory}/{name}" if directory else name, upload))
    return planned


def _file_ancestor_refusal(repo: Repo, head: str | None, path: str, shown: str) -> Refusal | None:
    """``ensure_no_file_ancestors_in_tree``: no proper ancestor of ``path`` may be a file."""
    if head is None:
        return None
    segments = [text for _, text in components(path)][:-1]
    for depth in range(1, len(segments) + 1):
        if repo.node(head, "/".join(segments[:depth])) == "file":
            return Refusal(f"Target path must be a directory: {shown}")
    return None


def _target_refusal(repo: Repo, target: Target, mode: Mode, node: str | None) -> Refusal | None:
    """The checks of ``{path}`` a non-empty repository gets before the author is looked at."""
    refusal = _file_ancestor_refusal(repo, target.head, target.path, target.path)
    if refusal is None and mode is Mode.SINGLE_FILE and not target.path:
        refusal = Refusal("Invalid target path: expected a full file path for `file` uploads")
    if refusal is None and mode is not Mode.SINGLE_FILE and node == "file":
        refusal = Refusal(f"Target path must be a directory: {target.path}")
    return refusal


def _plan(repo: Repo, form: UploadForm, target: Target) -> Tree | Refusal:
    """The files to commit, path -> file, checked in oxen-server's order."""
    node = None if target.head is None else repo.node(target.head, target.path)
    mode = _mode(form, node == "dir")
    if isinstance(mode, Refusal):
        return mode
    refusal = None if target.head is None else _target_refusal(repo, target, mode, node)
    for name in ("name", "email"):
        if refusal is None and name not in form.text:
            refusal = Refusal(f"{name.capitalize()} is required")
    if refusal is not None:
        return refusal
    planned = _destinations(form, mode, target.path)
    if isinstance(planned, Refusal):
        return planned
    for destination, _ in planned:
        refusal = _file_ancestor_refusal(repo, target.head, destination, target.path)
        if refusal is not None:
            return refusal
    return {path: StoredFile(up.data, content_type_for(up.content_type, path)) for path, up in planned}


def _target(request: web.Request, repo: Repo) -> Target | web.Response:
    """The branch and path of a PUT. In an empty repository the first segment of the resource is the
    branch, read without the extra decoding (``handle_initial_put_empty_repo``); otherwise it is
    resolved, and must be a branch."""
    if repo.is_empty:
        raw = f"{path_param(request, 'branch')}/{path_param(request, 'path')}"
        segments = [text for kind, text in components(raw) if kind != "cur"]
        return Target(segments[0] if segments else "main", None, "/".join(segments[1:]))
    resource = f"{request.match_info['branch']}/{request.match_info['path']}"
    resolved = resolve(repo, resource)
    if resolved is None:
        return path_does_not_exist(f"{path_param(request, 'branch')}/{path_param(request, 'path')}")
    if resolved.branch is None or resolved.commit_id is None:
        return branch_not_found(resolved.version)
    return Target(resolved.branch, resolved.commit_id, resolved.path)


async def upload(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    if state.config.auto_create_repos:
        state.repos.create(request.match_info["namespace"], request.match_info["repo"])
    existing = repo_of(request)
    if isinstance(existing, Repo) and existing.read_only:  # emulator-only: refused before the body
        return read_only(existing.namespace, existing.name)
    form = await read_upload_form(request, state.config.put_file_memory_limit_bytes)
    if isinstance(form, web.Response):
        return form
    await stall(request)
    repo = repo_of(request)
    if isinstance(repo, web.Response):
        return repo
    target = _target(request, repo)
    if isinstance(target, web.Response):
        return target
    files = _plan(repo, form, target)
    if isinstance(files, Refusal):
        return bad_request(files.message)
    refusal = branch_name_refusal(target.branch) if target.head is None else None
    if refusal is not None:  # upstream commits, then fails to create the branch: a 500 either way
        return internal_error(refusal)
    return await _commit(request, repo, form, target, files)


async def _commit(
    request: web.Request, repo: Repo, form: UploadForm, target: Target, files: Tree
) -> web.StreamResponse:
    state = state_of(request)
    for path, stored in files.items():
        state.counters.files_received[(path, stored.sha256)] += 1
    head_tree = {} if target.head is None else repo.trees[target.head]
    if unchanged_paths(head_tree, files.items()) == set(files):
        return no_changes()
    default = "Initial commit" if target.head is None else f"Auto-commit files to {target.path}"
    commit = state.repos.commit(
        repo.namespace,
        repo.name,
        target.branch,
        files,
        message=form.text.get("message", default),
        author=form.text["name"],
        email=form.text["email"],
    )
    state.counters.count_commit(len(commit.sent))
    state.counters.emit("committed", commit.id)
    answer = success("resource_created", oxen_version=OXEN_VERSION, commit=commit.as_json())
    return await finish_write(request, answer, commit_id=commit.id)


async def get_file(request: web.Request) -> web.Response:
    """The file at a branch (its newest version), a commit id, or a workspace (staged, else its base)."""
    repo = repo_of(request)
    if isinstance(repo, web.Response):
        return repo
    if repo.is_public is False and not carries_key(request, state_of(request).config.api_key):
        return repo_not_found(repo.namespace, repo.name)  # the hub hides a private repository
    resource = f"{request.match_info['branch']}/{request.match_info['path']}"
    resolved = resolve(repo, resource)
    if resolved is None:
        return path_does_not_exist(f"{path_param(request, 'branch')}/{path_param(request, 'path')}")
    workspace, stored = resolved.workspace, None
    commit_id = resolved.commit_id if workspace is None else workspace.commit_id
    if workspace is not None:
        stored = workspace.staged.get(resolved.path)
    if stored is None and commit_id is not None:
        stored = repo.trees[commit_id].get(resolved.path)
    if stored is None or commit_id is None:
        return path_does_not_exist(resolved.path)
    headers = {"Content-Type": stored.content_type}
    changed_in = repo.history(commit_id, resolved.path)
    if changed_in and resolved.path not in (workspace.staged if workspace else {}):
        headers["oxen-revision-id"] = changed_in[0].id
    return web.Response(body=stored.data, headers=headers)
