"""In-memory Oxen repositories: branches, commits and their trees, the workspaces and version chunks
each repository holds, and reference-URL resolution for models.

A file's bytes are held once: every tree, workspace and commit that has the file shares one
``StoredFile``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote, urlsplit

from batchgen.emulator.clock import Clock
from batchgen.emulator.media import data_file
from batchgen.emulator.resources import resolve

if TYPE_CHECKING:
    from batchgen.emulator.workspaces import Workspace

DEFAULT_BRANCH = "main"
INITIAL_COMMIT = ("Initialized Repo 🐂", "Oxen", "oxen@oxen.ai")  # liboxen's, for an empty repo's workspace
EXAMPLE_FILE = ("elau", "assets", DEFAULT_BRANCH, "bloxy/bloxy_cropped_512x512.png")

_FILE_PATH = re.compile(r"^/api/repos/([^/]+)/([^/]+)/file/(.+)$")
_DATA_URI = re.compile(r"^data:(?:image|video)/[\w.+-]+;base64,(.+)$", re.DOTALL)

Tree = dict[str, "StoredFile"]  # path -> file, every file of a commit


@dataclass(frozen=True)
class StoredFile:
    data: bytes
    content_type: str

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Commit:
    id: str
    parent_ids: tuple[str, ...]
    message: str
    author: str
    email: str
    timestamp: str
    added: tuple[str, ...] = ()  # paths new in this commit
    modified: tuple[str, ...] = ()  # paths whose bytes this commit changed
    unchanged: tuple[str, ...] = ()  # paths carried (PUT) or staged (workspace) with the bytes they had

    @property
    def sent(self) -> tuple[str, ...]:
        """Every path the request that made this commit carried: a PUT's parts, or the paths staged
        in the workspace it committed."""
        return (*self.added, *self.modified, *self.unchanged)

    def as_json(self) -> dict[str, object]:
        """The commit as Oxen's API shows it (the change lists are emulator-side only)."""
        return {
            "id": self.id,
            "parent_ids": list(self.parent_ids),
            "message": self.message,
            "author": self.author,
            "email": self.email,
            "timestamp": self.timestamp,
        }

    def touches(self, path: str) -> bool:
        """Whether this commit added or changed ``path`` or anything under it ("" = anything)."""
        if not path:
            return True
        prefix = path.rstrip("/") + "/"
        return any(p == path or p.startswith(prefix) for p in (*self.added, *self.modified))


@dataclass
class Repo:
    namespace: str
    name: str
    description: str = ""
    read_only: bool = False  # the emulator's key may read but not write
    is_public: bool | None = None  # as POST /api/repos asked (oxen-server keeps it for the hub only)
    branches: dict[str, str] = field(default_factory=dict)  # branch name -> head commit id
    commits: dict[str, Commit] = field(default_factory=dict)  # commit id -> commit, oldest first
    trees: dict[str, Tree] = field(default_factory=dict)  # commit id -> every file at that commit
    workspaces: dict[str, Workspace] = field(default_factory=dict)  # id -> workspace, oldest first
    chunks: dict[str, dict[int, bytes]] = field(default_factory=dict)  # version hash -> offset -> bytes

    @property
    def is_empty(self) -> bool:
        """No commit yet, hence no branch (as oxen-server reports it)."""
        return not self.branches

    def resolve(self, revision: str) -> str | None:
        """The commit id a branch name (first) or a commit id stands for."""
        if revision in self.branches:
            return self.branches[revision]
        return revision if revision in self.commits else None

    def tree(self, revision: str) -> Tree | None:
        commit_id = self.resolve(revision)
        return None if commit_id is None else self.trees[commit_id]

    def is_dir(self, revision: str, path: str) -> bool:
        prefix = path.strip("/") + "/"
        return any(name.startswith(prefix) for name in self.tree(revision) or {})

    def node(self, commit_id: str, path: str) -> Literal["file", "dir"] | None:
        """What ``path`` is at a commit ("" is the root directory)."""
        if not path:
            return "dir"
        if path in self.trees[commit_id]:
            return "file"
        return "dir" if self.is_dir(commit_id, path) else None

    def workspace(self, id_or_name: str) -> Workspace | None:
        """A workspace by id, else by name (as liboxen's ``workspaces::get`` looks it up)."""
        found = self.workspaces.get(id_or_name)
        if found is not None:
            return found
        return next((w for w in self.workspaces.values() if w.name == id_or_name), None)

    def history(self, commit_id: str, path: str = "") -> list[Commit]:
        """Commits reachable from ``commit_id`` through first parents, newest first; only those touching
        ``path`` when one is given."""
        found: list[Commit] = []
        current: str | None = commit_id
        while current is not None:
            commit = self.commits[current]
            if commit.touches(path.strip("/")):
                found.append(commit)
            current = commit.parent_ids[0] if commit.parent_ids else None
        return found


class RepoStore:
    """Repositories keyed by (namespace, name)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._repos: dict[tuple[str, str], Repo] = {}

    def seed_examples(self) -> None:
        namespace, name, branch, path = EXAMPLE_FILE
        self.create(namespace, name, "Example assets used by the Oxen docs")
        self.commit(
            namespace,
            name,
            branch,
            {path: StoredFile(data_file("bloxy.png"), "image/png")},
            message="Add example asset",
            author="elau",
            email="elau@example.com",
        )

    def create(
        self,
        namespace: str,
        name: str,
        description: str = "",
        *,
        read_only: bool = False,
        is_public: bool | None = None,
    ) -> bool:
        """Create an empty repository (no commit, no branch); False if it already exists."""
        if (namespace, name) in self._repos:
            return False
        self._repos[(namespace, name)] = Repo(namespace, name, description, read_only, is_public)
        return True

    def repo(self, namespace: str, name: str) -> Repo | None:
        return self._repos.get((namespace, name))

    def commit(
        self,
        namespace: str,
        name: str,
        branch: str,
        files: Tree,
        *,
        message: str,
        author: str,
        email: str,
        parent: str | None = None,
    ) -> Commit:
        """Lay ``files`` (path -> file) over the head of ``branch`` as one commit, and move the branch.

        A file whose bytes equal the head's is left as it was and listed as ``unchanged``. The branch
        must exist, unless the repository is empty: then the commit is the root and creates it.
        ``parent`` defaults to the branch head.
        """
        repo = self._repos[(namespace, name)]
        parent = parent or repo.branches.get(branch)
        if parent is None and not repo.is_empty:
            raise KeyError(f"branch {branch!r} does not exist")
        tree = dict(repo.trees[parent]) if parent else {}
        added: list[str] = []
        modified: list[str] = []
        unchanged: list[str] = []
        for path, stored in files.items():
            previous = tree.get(path)
            if previous is not None and same_bytes(previous, stored):
                unchanged.append(path)
                continue
            (added if previous is None else modified).append(path)
            tree[path] = stored
        commit = Commit(
            uuid.uuid4().hex,
            (parent,) if parent else (),
            message,
            author,
            email,
            self.timestamp(),
            tuple(added),
            tuple(modified),
            tuple(unchanged),
        )
        repo.commits[commit.id] = commit
        repo.trees[commit.id] = tree
        repo.branches[branch] = commit.id
        return commit

    def initial_commit(self, namespace: str, name: str, branch: str) -> Commit:
        """The empty root commit liboxen makes on ``branch`` when a workspace is asked for in an empty
        repository."""
        message, author, email = INITIAL_COMMIT
        return self.commit(namespace, name, branch, {}, message=message, author=author, email=email)

    def timestamp(self) -> str:
        """Now, as RFC 3339 UTC with microseconds."""
        return datetime.fromtimestamp(self._clock.time(), UTC).isoformat().replace("+00:00", "Z")

    def create_branch(self, namespace: str, name: str, branch: str, commit_id: str) -> None:
        """Point a new branch at an existing commit."""
        repo = self._repos[(namespace, name)]
        if commit_id not in repo.commits:
            raise KeyError(f"commit {commit_id!r} does not exist")
        repo.branches[branch] = commit_id

    def fetch(self, url: str) -> bool:
        """Whether a model could download ``url``: a data URI, or a public repo's file URL on any host."""
        match = _DATA_URI.match(url)
        if match:
            return _valid_base64(match.group(1))
        parts = urlsplit(url)
        path_match = _FILE_PATH.match(unquote(parts.path))
        if parts.scheme not in ("http", "https") or not parts.netloc or not path_match:
            return False
        namespace, name, resource = path_match.groups()
        repo = self._repos.get((namespace, name))
        if repo is None or repo.is_public is False:  # the model fetches without a key
            return False
        resolved = resolve(repo, resource)
        if resolved is None or resolved.commit_id is None:
            return False
        return resolved.path in repo.trees[resolved.commit_id]


def same_bytes(first: StoredFile, second: StoredFile) -> bool:
    return first is second or first.data == second.data


def unchanged_paths(tree: Tree, files: Iterable[tuple[str, StoredFile]]) -> set[str]:
    """The paths among ``files`` whose bytes equal ``tree``'s."""
    return {path for path, stored in files if path in tree and same_bytes(tree[path], stored)}


def _valid_base64(payload: str) -> bool:
    try:
        return bool(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError):
        return False
