"""Picks: the results a person chose to hand over, as `batchgen deliver --picks FILE` reads them.

A picks file is either the report's export (a CSV whose header has a `key` column, one pick a row:
`key, title, path, …`) or a list a person edits: one job key or key prefix a line (at least
MIN_PREFIX characters, like the report's links), `#` starting a comment. Each pick must name one done
result of the current plan; every pick that does not is refused at once, each with why (the manifest
changed its job since the pick, its job failed, it is not done yet, it names no job or several).
Pure but for reading the file.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from batchgen.errors import UsageError
from batchgen.journal.store import JobRecord
from batchgen.results.report import FORMULA_STARTS
from batchgen.states import JobState

__all__ = ["MIN_PREFIX", "Pick", "parse_picks", "read_picks", "resolve_picks"]

MIN_PREFIX = 6  # the report's links carry 12; fewer than 6 hex characters name a job by luck
_HEX = re.compile(r"[0-9a-f]+")
_SHOWN = 3  # jobs named when a prefix matches several


@dataclass(frozen=True, slots=True)
class Pick:
    """One pick as written: the key or prefix, where it is written, and its title when the file says."""

    key: str
    where: str  # "picks.csv line 3"
    title: str = ""

    def describe(self) -> str:
        shown = f"pick {self.key[:12]}"
        return shown + (f" ({self.title!r}, {self.where})" if self.title else f" ({self.where})")


def read_picks(path: Path) -> list[Pick]:
    """The picks of a file (UsageError when it cannot be read or holds none)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--picks {path}: cannot read it ({exc})") from None
    picks = parse_picks(text, path.name)
    if not picks:
        raise UsageError(f"--picks {path}: no picks in it (a CSV with a key column, or one key a line)")
    return picks


def parse_picks(text: str, source: str) -> list[Pick]:
    """The report's CSV export (its header has `key`) or a list of keys, one a line, `#` comments."""
    lines = text.splitlines()
    first = next((line for line in lines if line.strip() and not line.lstrip().startswith("#")), "")
    header = next(csv.reader([first]), [])
    if "key" in (cell.strip().lower() for cell in header):
        return _csv_picks(text, source)
    keys = ((number, line.split("#", 1)[0].strip()) for number, line in enumerate(lines, start=1))
    return [Pick(key.lower(), f"{source} line {number}") for number, key in keys if key]


def _csv_picks(text: str, source: str) -> list[Pick]:
    reader = csv.DictReader(io.StringIO(text))
    fields = {name.strip().lower(): name for name in reader.fieldnames or ()}
    picks = []
    for row in reader:
        key = (row.get(fields["key"]) or "").strip().lower()
        if not key:
            continue
        title = (row.get(fields.get("title", ""), "") or "").strip()
        if title[:1] == "'" and title[1:].startswith(FORMULA_STARTS):
            title = title[1:]  # the export's guard against a spreadsheet running it as a formula
        picks.append(Pick(key, f"{source} line {reader.line_num}", title))
    return picks


def resolve_picks(picks: Iterable[Pick], records: Mapping[str, JobRecord]) -> list[str]:
    """The keys of the picked results (journal order); UsageError naming every pick that is refused."""
    chosen: set[str] = set()
    refused: list[str] = []
    for pick in picks:
        key, why = _resolve(pick.key, records)
        if key is None:
            refused.append(f"{pick.describe()}: {why}")
        else:
            chosen.add(key)
    if refused:
        many = f"{len(refused)} picks are" if len(refused) > 1 else "a pick is"
        raise UsageError(
            f"{many} not a done result of the current plan, nothing was sent:\n  "
            + "\n  ".join(refused)
            + "\nPick again from the run's report.html (or edit the picks file) and deliver again."
        )
    return [r.key for r in sorted(records.values(), key=lambda r: r.idx) if r.key in chosen]


def _resolve(text: str, records: Mapping[str, JobRecord]) -> tuple[str | None, str]:
    """The key a pick names, or None with why it is refused."""
    if len(text) < MIN_PREFIX or not _HEX.fullmatch(text):
        return None, f"not a job key (keys are hexadecimal; give at least {MIN_PREFIX} characters)"
    matches = [record for key, record in records.items() if key.startswith(text)]
    planned = sorted((record for record in matches if record.planned), key=lambda r: r.idx)
    if len(planned) > 1:
        named = ", ".join(f"{r.key[:12]} {r.label!r}" for r in planned[:_SHOWN])
        return None, f"names {len(planned)} jobs of the plan ({named}): give more of the key"
    if not planned:
        if matches:
            return None, (
                f"its job ({matches[0].label}) is no longer in the current plan: the manifest changed "
                "it since this pick was made, so the picked take is superseded"
            )
        return None, "no job of this run directory has this key (picks of another run directory?)"
    record = planned[0]
    if record.state is JobState.FAILED:
        error = f" ({record.error})" if record.error else ""
        return None, f"its job failed{error}: there is no result to send"
    if record.state is not JobState.DONE or not record.sha256:
        return None, f"its job is {record.state.value}, not done: there is no result yet"
    return record.key, ""
