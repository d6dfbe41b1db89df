"""A ``{resource}`` URL segment resolved as liboxen's ``parse_resource_from_path`` does
(``core/v_latest/resource.rs``): a commit id as the first segment; else the longest leading run of
segments that names a branch, the whole resource last; else a workspace id or name as the first
segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from batchgen.emulator.oxen_paths import components

if TYPE_CHECKING:
    from batchgen.emulator.repos import Repo
    from batchgen.emulator.workspaces import Workspace


@dataclass(frozen=True)
class Resolved:
    """What a resource names: a commit (and the branch it came from, if any) or a workspace, and the
    path after it ("" for none)."""

    version: str  # the branch name, commit id or workspace id the resource starts with
    path: str
    commit_id: str | None = None
    branch: str | None = None
    workspace: Workspace | None = None


def resolve(repo: Repo, resource: str) -> Resolved | None:
    """What ``resource`` names in ``repo``, or None when nothing matches."""
    segments = [text for kind, text in components(resource) if kind != "cur"]
    if not segments:
        return None
    first = segments[0]
    if first in repo.commits:
        return Resolved(first, "/".join(segments[1:]), commit_id=first)
    for split in [*range(len(segments) - 1, 0, -1), len(segments)]:
        branch = "/".join(segments[:split])
        if branch in repo.branches:
            path = "/".join(segments[split:])
            return Resolved(branch, path, commit_id=repo.branches[branch], branch=branch)
    workspace = repo.workspace(first)
    if workspace is not None:
        return Resolved(workspace.id, "/".join(segments[1:]), workspace=workspace)
    return None
