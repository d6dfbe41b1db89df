"""Finding out whether an upload took effect, by looking at the branch, never by sending it again.

Each request's commit message carries its token, and the journal keeps the branch head known before
it was sent; so the branch's history, read newest first back to that head, shows the commit if it
was made, and shows that it was not if the head comes first. When the history cannot be read back
that far (it was rewritten, or is very long), each file's bytes on the branch are hashed instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from batchgen.client.repos import RepoApi
from batchgen.sinks.oxen.batching import token_of

log = logging.getLogger(__name__)

MAX_HISTORY_PAGES = 50  # 5,000 commits back; further than that, hash the files instead


@dataclass(frozen=True, slots=True)
class Found:
    commits: dict[str, str]  # token -> commit id, for the requests that took effect
    complete: bool  # the history was read back far enough: a token not found was never committed


async def find_tokens(api: RepoApi, tokens: set[str], heads: Iterable[str | None]) -> Found:
    """Read the branch's history newest first until every token is found, or every head (the branch's
    head before each request) has been passed, or the history ends. A head of None (the repository
    was empty) means the whole history."""
    found: dict[str, str] = {}
    left = set(heads)
    for page in range(1, MAX_HISTORY_PAGES + 1):
        history = await api.history(page)
        for commit in history.commits:
            token = token_of(commit.message)
            if token in tokens:
                found[token] = commit.id
            left.discard(commit.id)
            if found.keys() >= tokens or not left:
                return Found(found, True)
        if history.last:
            return Found(found, True)
    log.info("the branch's history is longer than %d pages: looking at the files instead", MAX_HISTORY_PAGES)
    return Found(found, False)


async def files_on_branch(api: RepoApi, files: Iterable[tuple[str, str]]) -> str | None:
    """When every (path, sha256) is on the branch with exactly those bytes: the commit that last
    changed the first of them (the request's, or an earlier identical one); else None."""
    pairs = list(files)
    for path, sha256 in pairs:
        if await api.file_sha256(path) != sha256:
            return None
    return await api.last_commit_of(pairs[0][0]) if pairs else None
