"""The journal's `deliveries` table: per target and repository path, the sha256 last sent, its state and
the commit it landed in. Every change is committed before it returns (a `sending` row is on disk
before its request is), so a kill -9 at any moment leaves rows that say what to look for.

States: `sending` (a request carrying it may have been acted on: look before sending again),
`delivered` (in `commit_id`), `unsent` (looked for: the request never took effect) and `failed`
(refused, or the repository kept failing; `error` says why). Only `delivered` with the same sha256
counts as delivered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import astuple, dataclass

from batchgen.journal.store import Journal

SENDING, DELIVERED, UNSENT, FAILED = "sending", "delivered", "unsent", "failed"

_COLUMNS = "path, sha256, state, commit_id, token, head, sent_at, error"  # Delivery's fields, in order
_UPSERT = (
    "INSERT INTO deliveries (target, path, sha256, state, commit_id, token, head, sent_at, error, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (target, path) DO UPDATE SET sha256=excluded.sha256,"
    " state=excluded.state, commit_id=excluded.commit_id, token=excluded.token, head=excluded.head,"
    " sent_at=excluded.sent_at, error=excluded.error, updated_at=excluded.updated_at"
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One file of one target as the journal knows it."""

    path: str  # in the repository
    sha256: str
    state: str
    commit_id: str | None = None
    token: str | None = None  # of the request that carries (or carried) it
    head: str | None = None  # the branch head known before that request
    sent_at: float | None = None
    error: str | None = None


class DeliveryLedger:
    """The deliveries of one target, mirrored in memory."""

    def __init__(self, journal: Journal, target: str) -> None:
        self._journal = journal
        self.target = target
        rows = journal.read_rows(f"SELECT {_COLUMNS} FROM deliveries WHERE target=?", (target,))
        self._rows = {row[0]: Delivery(*row) for row in rows}

    def rows(self) -> dict[str, Delivery]:
        return dict(self._rows)

    def get(self, path: str) -> Delivery | None:
        return self._rows.get(path)

    def is_delivered(self, path: str, sha256: str) -> bool:
        row = self._rows.get(path)
        return row is not None and row.state == DELIVERED and row.sha256 == sha256

    def sending(self, files: Iterable[tuple[str, str]], token: str, head: str | None) -> float:
        """Before a request: these (path, sha256) may be on the branch once it was sent. The time."""
        now = time.time()
        self._write(Delivery(path, sha, SENDING, token=token, head=head, sent_at=now) for path, sha in files)
        return now

    def delivered(self, files: Iterable[tuple[str, str]], commit_id: str | None) -> None:
        self._write(Delivery(path, sha, DELIVERED, commit_id=commit_id) for path, sha in files)

    def unsent(self, files: Iterable[tuple[str, str]]) -> None:
        self._write(Delivery(path, sha, UNSENT) for path, sha in files)

    def failed(self, files: Iterable[tuple[str, str]], error: str) -> None:
        self._write(Delivery(path, sha, FAILED, error=error) for path, sha in files)

    # -- workspaces to remove -----------------------------------------------------------------

    def workspaces_to_remove(self) -> list[str]:
        """Workspaces this run directory made and could not delete (the next process deletes them)."""
        raw = self._journal.meta(self._workspaces_key)
        listed = json.loads(raw) if raw else []
        return [str(ws) for ws in listed] if isinstance(listed, list) else []

    def remember_workspace(self, workspace: str) -> None:
        listed = self.workspaces_to_remove()
        if workspace not in listed:
            self._journal.set_meta(self._workspaces_key, json.dumps([*listed, workspace]))

    def forget_workspace(self, workspace: str) -> None:
        listed = self.workspaces_to_remove()
        if workspace in listed:
            self._journal.set_meta(self._workspaces_key, json.dumps([w for w in listed if w != workspace]))

    @property
    def _workspaces_key(self) -> str:
        return f"workspaces to remove: {self.target}"

    def _write(self, rows: Iterable[Delivery]) -> None:
        changed, now = list(rows), time.time()
        self._journal.write_rows(_UPSERT, [(self.target, *astuple(row), now) for row in changed])
        for row in changed:
            self._rows[row.path] = row
