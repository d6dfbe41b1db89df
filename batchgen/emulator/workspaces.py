"""Workspaces: files staged on top of a base commit, then committed onto a branch's current head as
one commit, as liboxen does it (``repositories/workspaces.rs``, ``core/v_latest/workspaces/``,
``core/v_latest/add.rs``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from batchgen.emulator.repos import Commit, Repo, RepoStore, StoredFile, same_bytes

Status = Literal["Added", "Modified"]


@dataclass
class Workspace:
    id: str
    name: str | None
    branch: str  # the branch it was created on (an emulator-side note: oxen keeps only the commit)
    commit_id: str  # the base commit; a named workspace moves to each commit it makes
    created_at: str
    staged: dict[str, StoredFile] = field(default_factory=dict)  # repository path -> file

    def status(self, repo: Repo, path: str) -> Status:
        """Staged as new to the base commit, or as a change of the base's file."""
        return "Modified" if path in repo.trees[self.commit_id] else "Added"


@dataclass(frozen=True)
class WorkspaceInfo:
    """A live workspace as tests see it (``Emulator.workspaces``)."""

    id: str
    name: str | None
    branch: str
    base_commit: str
    staged: tuple[str, ...]
    created_at: str


def info(workspace: Workspace) -> WorkspaceInfo:
    return WorkspaceInfo(
        workspace.id,
        workspace.name,
        workspace.branch,
        workspace.commit_id,
        tuple(sorted(workspace.staged)),
        workspace.created_at,
    )


def stage(repo: Repo, workspace: Workspace, path: str, stored: StoredFile) -> bool:
    """Stage ``stored`` at ``path`` (an upsert); False when its bytes equal the base commit's, which
    liboxen leaves out, keeping whatever was staged there before."""
    base = repo.trees[workspace.commit_id].get(path)
    if base is not None and same_bytes(base, stored):
        return False
    workspace.staged[path] = stored
    return True


def conflicts(repo: Repo, workspace: Workspace, head: str) -> list[str]:
    """Staged files that changed on the branch since the base commit: present at both with different
    bytes (``list_conflicts``). Whatever else moved on the branch is no conflict."""
    if head == workspace.commit_id:
        return []
    base_tree, head_tree = repo.trees[workspace.commit_id], repo.trees[head]
    return [
        path
        for path in workspace.staged
        if path in base_tree and path in head_tree and not same_bytes(base_tree[path], head_tree[path])
    ]


def commits_since_common_ancestor(repo: Repo, workspace: Workspace, head: str) -> list[Commit] | None:
    """The head's history down to, and including, its common ancestor with the base commit, newest
    first (``list_commits_between_commits``); None when they share no history."""
    on_base = {commit.id for commit in repo.history(workspace.commit_id)}
    found: list[Commit] = []
    for commit in repo.history(head):
        found.append(commit)
        if commit.id in on_base:
            return found
    return None


def commit(
    store: RepoStore, repo: Repo, workspace: Workspace, branch: str, *, message: str, author: str, email: str
) -> Commit:
    """Commit everything staged onto the branch's current head; the caller has checked the staged set
    is not empty and holds no conflict. The staged set is cleared; a named workspace moves to the new
    commit (an unnamed one is the caller's to delete)."""
    made = store.commit(
        repo.namespace,
        repo.name,
        branch,
        dict(workspace.staged),
        message=message,
        author=author,
        email=email,
    )
    workspace.staged.clear()
    workspace.commit_id = made.id
    return made
