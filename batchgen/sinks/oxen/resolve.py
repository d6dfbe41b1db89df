"""Finding out whether a commit took effect, by looking at the branch, never by sending it again.

Each request's commit message carries its token, and the journal keeps the branch head known before
it was sent; so the branch's history, read newest first back to that head, shows the commit if it
was made, and shows that it was not if the head comes first. When the history cannot be read back
that far (it was rewritten, or is very long), each file's bytes on the branch are hashed instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

from batchgen.client.repos import RepoApi
from batchgen.sinks.oxen.batching import token_of

log = logging.getLogger(__name__)

MAX_HISTORY_PAGES = 50  # 5,000 commits back; further than that, hash the files instead


async def find_commits(
    api: RepoApi, files: Mapping[str, Sequence[tuple[str, str]]], heads: Iterable[str | None]
) -> dict[str, str]:
    """Token -> commit id, for the requests (token -> the (path, sha256) it carries) that took effect.
    The history is read newest first until every token is found, or every head (the branch's head
    before each request; None: the repository was empty, the whole history) has been passed, or the
    history ends; a token it does not reach back to is found by its files' bytes on the branch."""
    found: dict[str, str] = {}
    left = set(heads)
    for page in range(1, MAX_HISTORY_PAGES + 1):
        history = await api.history(page)
        for commit in history.commits:
            token = token_of(commit.message)
            if token is not None and token in files:
                found[token] = commit.id
            left.discard(commit.id)
            if found.keys() >= files.keys() or not left:
                return found
        if history.last:
            return found
    log.info("the branch's history is longer than %d pages: looking at the files instead", MAX_HISTORY_PAGES)
    for token in sorted(files.keys() - found.keys()):
        commit_id = await files_on_branch(api, files[token])
        if commit_id is not None:
            found[token] = commit_id
    return found


async def files_on_branch(api: RepoApi, pairs: Sequence[tuple[str, str]]) -> str | None:
    """When every (path, sha256) is on the branch with exactly those bytes: the commit that last
    changed the first of them (the request's, or an earlier identical one); else None."""
    for path, sha256 in pairs:
        if await api.file_sha256(path) != sha256:
            return None
    return await api.last_commit_of(pairs[0][0]) if pairs else None
