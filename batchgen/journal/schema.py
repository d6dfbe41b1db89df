"""The journal's file: its name, its SQL schema (and the columns added since the first format), and
whether a run directory has a usable one: readers (`status`, `report`, `plan`, `ls`) are told clearly
when it is missing or empty, never given a new, empty journal written in its place.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3

JOURNAL_NAME = "state.sqlite"
SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    output_path TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    generation_id TEXT,
    sent_request TEXT,
    submitted_at REAL,
    started_at REAL,
    completed_at REAL,
    downloaded_at REAL,
    sha256 TEXT,
    size INTEGER,
    mtime_ns INTEGER,
    error TEXT,
    updated_at REAL NOT NULL,
    api TEXT,
    planned INTEGER NOT NULL DEFAULT 1,
    quote_usd TEXT,
    server_submitted_at REAL,
    title TEXT
);
CREATE TABLE IF NOT EXISTS generations (
    generation_id TEXT PRIMARY KEY,
    job_key TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_key TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    at REAL NOT NULL,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS assets (sha256 TEXT PRIMARY KEY, url TEXT NOT NULL, uploaded_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    target TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    state TEXT NOT NULL,
    commit_id TEXT,
    token TEXT,
    head TEXT,
    sent_at REAL,
    error TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (target, path)
);
CREATE TABLE IF NOT EXISTS billing (generation_id TEXT PRIMARY KEY, cost TEXT, read_at REAL NOT NULL);
"""

# Columns of `jobs` added after the first journal format: their SQL definitions (added when a run
# opens the journal) and what a journal without them reads as.
ADDED_COLUMNS = {
    "api": ("TEXT", "NULL"),
    "planned": ("INTEGER NOT NULL DEFAULT 1", "1"),
    "quote_usd": ("TEXT", "NULL"),
    "server_submitted_at": ("REAL", "NULL"),
    "title": ("TEXT", "NULL"),
}

_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)")
_WAY_OUT = (
    "`batchgen run` with its manifest (and the same --output-dir) rebuilds it from the results' "
    "sidecars before anything is sent"
)


def journal_problem(run_dir: Path) -> str | None:
    """Why `run_dir` has no journal to read (missing, empty, not a file), in words; None when it has."""
    path = run_dir / JOURNAL_NAME
    try:
        mode = path.stat()
    except FileNotFoundError:
        if (run_dir / "plan.json").exists() or (run_dir / "videos").exists():
            return f"{path} is missing: the journal of this run directory was lost; {_WAY_OUT}"
        return f"{run_dir} is not a batchgen run directory (no {JOURNAL_NAME})"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if not stat.S_ISREG(mode.st_mode):
        return f"{path} is not a regular file, so not a batchgen journal"
    if mode.st_size == 0:
        return f"{path} is empty (0 bytes): the journal of this run directory was lost; {_WAY_OUT}"
    return None


def shadow_missing_tables(conn: sqlite3.Connection) -> None:
    """Tables an older journal lacks, as empty temporary ones (a read-only journal cannot get them):
    reading it then finds nothing there instead of failing."""
    have = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    for statement in SCHEMA.split(";"):
        found = _TABLE.search(statement)
        if found and found.group(1) not in have:
            conn.execute(statement.replace("CREATE TABLE IF NOT EXISTS", "CREATE TEMP TABLE", 1))


def select_columns(conn: sqlite3.Connection, columns: Sequence[str]) -> str:
    """`columns` of `jobs` for a SELECT, each one the journal predates read as its default."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    return ", ".join(name if name in have else f"{ADDED_COLUMNS[name][1]} AS {name}" for name in columns)


def add_missing_columns(conn: sqlite3.Connection) -> None:
    have = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    for name, (definition, _) in ADDED_COLUMNS.items():
        if name not in have:
            conn.execute(f"ALTER TABLE jobs ADD COLUMN {name} {definition}")
