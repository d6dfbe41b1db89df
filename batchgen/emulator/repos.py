"""In-memory Oxen repositories: branches, commits, file versions; reference-URL resolution for models."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from urllib.parse import unquote, urlsplit

from batchgen.emulator.clock import Clock
from batchgen.emulator.media import data_file

DEFAULT_BRANCH = "main"
EXAMPLE_FILE = ("elau", "assets", DEFAULT_BRANCH, "bloxy/bloxy_cropped_512x512.png")

_FILE_PATH = re.compile(r"^/api/repos/([^/]+)/([^/]+)/file/([^/]+)/(.+)$")
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
    unchanged: tuple[str, ...] = ()  # paths sent again with the bytes they had

    @property
    def sent(self) -> tuple[str, ...]:
        """Every path the upload that made this commit carried."""
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
    branches: dict[str, str] = field(default_factory=dict)  # branch name -> head commit id
    commits: dict[str, Commit] = field(default_factory=dict)  # commit id -> commit, oldest first
    trees: dict[str, Tree] = field(default_factory=dict)  # commit id -> every file at that commit

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

    def file_ancestor(self, revision: str, path: str) -> str | None:
        """The first proper ancestor of ``path`` that is a file at ``revision`` (it cannot be a directory)."""
        tree, parts = self.tree(revision) or {}, path.strip("/").split("/")
        return next((a for a in ("/".join(parts[:i]) for i in range(1, len(parts))) if a in tree), None)

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

    def create(self, namespace: str, name: str, description: str = "", *, read_only: bool = False) -> bool:
        """Create an empty repository (no commit, no branch); False if it already exists."""
        if (namespace, name) in self._repos:
            return False
        self._repos[(namespace, name)] = Repo(namespace, name, description, read_only)
        return True

    def repo(self, namespace: str, name: str) -> Repo | None:
        return self._repos.get((namespace, name))

    def commit(
        self, namespace: str, name: str, branch: str, files: Tree, *, message: str, author: str, email: str
    ) -> Commit:
        """Add or replace ``files`` (path -> file) on ``branch`` as one commit.

        The branch must exist, unless the repository is empty: then the commit creates it.
        """
        repo = self._repos[(namespace, name)]
        parent = repo.branches.get(branch)
        if parent is None and not repo.is_empty:
            raise KeyError(f"branch {branch!r} does not exist")
        tree = dict(repo.trees[parent]) if parent else {}
        added, modified, unchanged = [], [], []
        for path, stored in files.items():
            path = path.strip("/")
            previous = tree.get(path)
            if previous is None:
                added.append(path)
            elif previous.data != stored.data:
                modified.append(path)
            else:
                unchanged.append(path)
            tree[path] = stored
        stamp = datetime.fromtimestamp(self._clock.time(), UTC).isoformat().replace("+00:00", "Z")
        commit = Commit(
            uuid.uuid4().hex,
            (parent,) if parent else (),
            message,
            author,
            email,
            stamp,
            tuple(added),
            tuple(modified),
            tuple(unchanged),
        )
        repo.commits[commit.id] = commit
        repo.trees[commit.id] = tree
        repo.branches[branch] = commit.id
        return commit

    def create_branch(self, namespace: str, name: str, branch: str, commit_id: str) -> None:
        """Point a new branch at an existing commit."""
        repo = self._repos[(namespace, name)]
        if commit_id not in repo.commits:
            raise KeyError(f"commit {commit_id!r} does not exist")
        repo.branches[branch] = commit_id

    def get(self, namespace: str, name: str, revision: str, path: str) -> StoredFile | None:
        """The file at ``path`` on a branch (its newest version) or at a commit id."""
        repo = self._repos.get((namespace, name))
        tree = None if repo is None else repo.tree(revision)
        return None if tree is None else tree.get(path.strip("/"))

    def fetch(self, url: str) -> bool:
        """Whether a model could download ``url``: a data URI, or a repo file URL on any host."""
        match = _DATA_URI.match(url)
        if match:
            return _valid_base64(match.group(1))
        parts = urlsplit(url)
        path_match = _FILE_PATH.match(unquote(parts.path))
        if parts.scheme not in ("http", "https") or not parts.netloc or not path_match:
            return False
        return self.get(*path_match.groups()) is not None


def _valid_base64(payload: str) -> bool:
    try:
        return bool(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError):
        return False
