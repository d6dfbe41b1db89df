"""In-memory Oxen repositories (public files, uploads) and reference-URL resolution for the models."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from batchgen.emulator.clock import Clock
from batchgen.emulator.media import data_file

DEFAULT_BRANCH = "main"
EXAMPLE_FILE = ("elau", "assets", DEFAULT_BRANCH, "bloxy/bloxy_cropped_512x512.png")

_FILE_PATH = re.compile(r"^/api/repos/([^/]+)/([^/]+)/file/([^/]+)/(.+)$")
_DATA_URI = re.compile(r"^data:(?:image|video)/[\w.+-]+;base64,(.+)$", re.DOTALL)


@dataclass(frozen=True)
class StoredFile:
    data: bytes
    content_type: str


@dataclass(frozen=True)
class Commit:
    id: str
    parent_ids: list[str]
    message: str
    author: str
    email: str
    timestamp: str

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "parent_ids": self.parent_ids, "message": self.message,
                "author": self.author, "email": self.email, "timestamp": self.timestamp}


@dataclass
class Repo:
    description: str = ""
    files: dict[str, StoredFile] = field(default_factory=dict)  # path on the default branch -> file
    commits: list[Commit] = field(default_factory=list)

    def is_dir(self, path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        return path in ("", "/") or any(name.startswith(prefix) for name in self.files)


class RepoStore:
    """Repositories keyed by (namespace, name); only the default branch exists."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._repos: dict[tuple[str, str], Repo] = {}

    def seed_examples(self) -> None:
        namespace, name, _, path = EXAMPLE_FILE
        self.create(namespace, name, "Example assets used by the Oxen docs")
        self.commit(namespace, name, {path: StoredFile(data_file("bloxy.png"), "image/png")},
                    message="Add example asset", author="elau", email="elau@example.com")

    def create(self, namespace: str, name: str, description: str = "") -> bool:
        """Create a repository; False if it already exists."""
        if (namespace, name) in self._repos:
            return False
        self._repos[(namespace, name)] = Repo(description=description)
        return True

    def repo(self, namespace: str, name: str) -> Repo | None:
        return self._repos.get((namespace, name))

    def commit(self, namespace: str, name: str, files: dict[str, StoredFile], *,
               message: str, author: str, email: str) -> Commit:
        """Add or replace ``files`` (path -> file) on the default branch, as one commit."""
        repo = self._repos[(namespace, name)]
        for path, file in files.items():
            repo.files[path.strip("/")] = file
        parents = [repo.commits[-1].id] if repo.commits else []
        stamp = datetime.fromtimestamp(self._clock.time(), UTC).isoformat().replace("+00:00", "Z")
        commit = Commit(uuid.uuid4().hex, parents, message, author, email, stamp)
        repo.commits.append(commit)
        return commit

    def get(self, namespace: str, name: str, branch: str, path: str) -> StoredFile | None:
        repo = self._repos.get((namespace, name))
        if repo is None or branch != DEFAULT_BRANCH:
            return None
        return repo.files.get(path.strip("/"))

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
