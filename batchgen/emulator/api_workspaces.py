"""``/api/repos/{ns}/{repo}/workspaces``: get-or-create, list, find, delete, validate, commit and the
mergeability check, as ``controllers/workspaces.rs`` answers them (staging is ``api_workspace_files``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from batchgen.emulator.actix import read_string_body
from batchgen.emulator.api_repos import branch_name_refusal, repo_of, writable_body, writable_repo
from batchgen.emulator.context import path_param, stall
from batchgen.emulator.oxen_json import Field, parse_struct
from batchgen.emulator.oxen_paths import rust_debug
from batchgen.emulator.repos import Repo
from batchgen.emulator.responses import (
    branch_not_found,
    described_not_found,
    error_response,
    internal_error,
    oxen_success,
    state_of,
    status_message,
    workspace_not_found,
)
from batchgen.emulator.workspaces import Workspace, commits_since_common_ancestor, conflicts
from batchgen.emulator.workspaces import commit as commit_workspace
from batchgen.emulator.writes import finish_write

NEW_WORKSPACE: dict[str, Field] = {
    "workspace_id": ("string", True),
    "branch_name": ("string", True),
    "resource_path": ("string", False),
    "entity_type": ("string", False),
    "name": ("string", False),
    "force": ("bool", False),
}
NEW_COMMIT: dict[str, Field] = {
    "message": ("string", True),
    "author": ("string", True),
    "email": ("string", True),
}


def workspace_json(repo: Repo, workspace: Workspace, shown_id: str | None = None) -> dict[str, Any]:
    """``WorkspaceResponse``; ``shown_id`` replaces the id where the server echoes the request's."""
    return {
        "id": workspace.id if shown_id is None else shown_id,
        "name": workspace.name,
        "commit": repo.commits[workspace.commit_id].as_json(),
        "created_at": workspace.created_at,
    }


def remove_workspace(request: web.Request, repo: Repo, workspace: Workspace) -> None:
    state = state_of(request)
    del repo.workspaces[workspace.id]
    state.counters.workspaces_deleted += 1
    state.counters.emit("workspace_deleted", workspace.id)


def _base_branch(request: web.Request, repo: Repo, branch: str) -> web.Response | None:
    """The branch a new workspace sits on; an empty repository gets its initial commit there first."""
    if branch in repo.branches:
        return None
    if not repo.is_empty:
        message = f"Branch not found: {branch}. For non-empty repositories, create the branch first."
        return status_message(400, message)
    refusal = branch_name_refusal(branch)
    if refusal is not None:
        return internal_error(refusal)
    state_of(request).repos.initial_commit(repo.namespace, repo.name, branch)
    return None


async def get_or_create(request: web.Request) -> web.StreamResponse:
    """``PUT`` (and the deprecated ``POST``) ``/workspaces``: the body is read as text, whatever its
    Content-Type. A found workspace answers with the *request's* ``workspace_id``."""
    read = await writable_body(request, auto_create=True)
    if isinstance(read, web.Response):
        return read
    repo, text = read
    body = parse_struct(text, NEW_WORKSPACE, "NewWorkspace")
    if isinstance(body, str):
        return status_message(400, body)
    refused = _base_branch(request, repo, body["branch_name"])
    if refused is not None:
        return refused
    workspace_id, name = body["workspace_id"], body["name"]
    found = repo.workspace(workspace_id if name is None else name)
    if found is not None:
        return await finish_write(
            request, oxen_success("resource_found", workspace=workspace_json(repo, found, workspace_id))
        )
    if workspace_id in repo.workspaces:
        return internal_error(f"Workspace {workspace_id} already exists")
    state = state_of(request)
    created = Workspace(
        workspace_id, name, body["branch_name"], repo.branches[body["branch_name"]], state.repos.timestamp()
    )
    repo.workspaces[workspace_id] = created
    state.counters.workspaces_created += 1
    state.counters.emit("workspace_created", workspace_id)
    return await finish_write(
        request, oxen_success("resource_created", workspace=workspace_json(repo, created))
    )


async def list_workspaces(request: web.Request) -> web.Response:
    """Every workspace, or the one named ``?name=`` (by name only); ``resource_created``, as the server
    says it."""
    repo = repo_of(request)
    if isinstance(repo, web.Response):
        return repo
    name = request.query.get("name")
    chosen = [w for w in repo.workspaces.values() if name is None or w.name == name]
    return oxen_success("resource_created", workspaces=[workspace_json(repo, w) for w in chosen])


async def clear_workspaces(request: web.Request) -> web.StreamResponse:
    """``DELETE /workspaces``: every workspace of the repository, whoever made it."""
    repo = writable_repo(request)
    if isinstance(repo, web.Response):
        return repo
    await stall(request)
    for workspace in list(repo.workspaces.values()):
        remove_workspace(request, repo, workspace)
    return await finish_write(request, oxen_success("resource_created"))


def workspace_of(request: web.Request, repo: Repo) -> Workspace | web.Response:
    identifier = path_param(request, "workspace_id")
    found = repo.workspace(identifier)
    return workspace_not_found(identifier) if found is None else found


async def get_workspace(request: web.Request) -> web.Response:
    repo = repo_of(request)
    if isinstance(repo, web.Response):
        return repo
    workspace = workspace_of(request, repo)
    if isinstance(workspace, web.Response):
        return workspace
    return oxen_success("resource_found", workspace=workspace_json(repo, workspace))


async def delete_workspace(request: web.Request) -> web.StreamResponse:
    """Answers with the id as given in the URL (an id or a name)."""
    repo = writable_repo(request)
    if isinstance(repo, web.Response):
        return repo
    await stall(request)
    workspace = workspace_of(request, repo)
    if isinstance(workspace, web.Response):
        return workspace
    shown = workspace_json(repo, workspace, path_param(request, "workspace_id"))
    remove_workspace(request, repo, workspace)
    return await finish_write(request, oxen_success("resource_created", workspace=shown))


async def validate(request: web.Request) -> web.Response:
    """``POST .../validate`` (liboxen announces the upload's size): only finds the workspace."""
    repo = repo_of(request)
    if isinstance(repo, web.Response):
        return repo
    text = await read_string_body(request)
    if isinstance(text, web.Response):
        return text
    workspace = workspace_of(request, repo)
    if isinstance(workspace, web.Response):
        return workspace
    return oxen_success("resource_found")


def behind(workspace: Workspace, branch: str, head: str) -> web.Response:
    """``OxenHttpError::WorkspaceBehind``: a staged file changed on the branch since the base commit."""
    detail = f"This workspace '{workspace.id}' is behind on branch '{branch}' commit {workspace.commit_id} < {head}"
    return error_response(409, "conflict", "Workspace is behind", detail)


async def commit(request: web.Request) -> web.StreamResponse:
    """``POST .../merge/{branch}`` and the deprecated ``.../commit/{branch}``: one commit of everything
    staged, on the branch's *current* head. An unnamed workspace is deleted after it; a named one moves
    to the new commit."""
    read = await writable_body(request)
    if isinstance(read, web.Response):
        return read
    repo, text = read
    body = parse_struct(text, NEW_COMMIT, "NewCommitBody")
    if isinstance(body, str):
        return status_message(400, body)
    workspace = workspace_of(request, repo)
    if isinstance(workspace, web.Response):
        return workspace
    branch = path_param(request, "branch")
    if branch not in repo.branches:
        return described_not_found(branch)
    if conflicts(repo, workspace, repo.branches[branch]):
        return behind(workspace, branch, repo.branches[branch])
    if not workspace.staged:
        return status_message(422, "NoChanges")
    state = state_of(request)
    made = commit_workspace(
        state.repos,
        repo,
        workspace,
        branch,
        message=body["message"],
        author=body["author"],
        email=body["email"],
    )
    state.counters.count_commit(len(made.sent))
    state.counters.emit("committed", made.id)
    if workspace.name is None:
        remove_workspace(request, repo, workspace)
    answer = oxen_success("resource_created", commit=made.as_json())
    return await finish_write(request, answer, commit_id=made.id)


async def mergeability(request: web.Request) -> web.Response:
    """``GET .../merge/{branch}``: whether the commit would go through, without making it."""
    repo = repo_of(request)
    if isinstance(repo, web.Response):
        return repo
    workspace = workspace_of(request, repo)
    if isinstance(workspace, web.Response):
        return workspace
    branch = path_param(request, "branch")
    if branch not in repo.branches:
        return branch_not_found(branch)
    head = repo.branches[branch]
    history = commits_since_common_ancestor(repo, workspace, head)
    if history is None:
        title = f"Error: head commit {rust_debug(head)} and base commit {rust_debug(workspace.commit_id)} have no common ancestor"
        return internal_error(title)
    found = conflicts(repo, workspace, head)
    return oxen_success(
        "resource_found",
        is_mergeable=not found,
        conflicts=[{"path": path} for path in found],
        commits=[c.as_json() for c in history],
    )
