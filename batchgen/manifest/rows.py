"""CSV rows of variables (`rows:`): read, checked and located in the CSV file itself."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from batchgen.errors import Problem
from batchgen.manifest.files import Refused, read_regular, reason
from batchgen.manifest.model import BUILTIN_VARS, Location, Rows, is_identifier
from batchgen.wording import describe_value

__all__ = ["MAX_CSV_PROBLEMS", "MAX_ROWS_BYTES", "load_rows"]

#: The largest rows CSV read: 100,000 rows of a few hundred bytes each, with room to spare.
MAX_ROWS_BYTES = 64 * 1024 * 1024
#: Rows with the wrong number of cells reported one by one; the rest are counted.
MAX_CSV_PROBLEMS = 10


class _CsvReader:
    """Reads one CSV of variables, collecting problems located in the CSV file itself."""

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.problems: list[Problem] = []
        self.header: tuple[str, ...] = ()
        self.rows: list[dict[str, str]] = []
        self.lines: list[int] = []
        self._bad_rows = 0

    def add(self, line: int | None, where: str, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(self.shown, line, None, where, message, hint))

    def read(self, text: str) -> None:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        try:
            for cells in reader:
                if cells:
                    self._take(cells, reader.line_num)
        except csv.Error as exc:
            self.add(reader.line_num, "", f"malformed CSV: {exc}")
            return
        if not self.header:
            self.add(None, "", "is empty: expected a header row naming the variables")
        elif not self.rows and not self.problems:
            self.add(1, "", "has a header but no rows")
        if self._bad_rows > MAX_CSV_PROBLEMS:
            self.add(
                None, "", f"…and {self._bad_rows - MAX_CSV_PROBLEMS} more rows with the wrong number of cells"
            )

    def _take(self, cells: list[str], line: int) -> None:
        if not self.header:
            self.header = tuple(cells)
            self._check_header(line)
        elif len(cells) != len(self.header):
            self._bad_rows += 1
            if self._bad_rows <= MAX_CSV_PROBLEMS:
                message = f"has {_cells(len(cells))}, but the header has {_cells(len(self.header))}"
                self.add(
                    line, f"row {len(self.rows) + self._bad_rows}", message, "quote cells that contain commas"
                )
        else:
            self.rows.append(dict(zip(self.header, cells, strict=True)))
            self.lines.append(line)

    def _check_header(self, line: int) -> None:
        seen: set[str] = set()
        for number, name in enumerate(self.header, 1):
            where = f"header column {number}"
            if not is_identifier(name):
                message = f"{describe_value(name)} is not a valid variable name"
                self.add(line, where, message, "use letters, digits and '_', not starting with a digit")
            elif name in BUILTIN_VARS:
                self.add(line, where, f"'{name}' is a built-in variable", "rename the column")
            elif name in seen:
                self.add(line, where, f"'{name}' appears twice in the header")
            seen.add(name)


def _cells(count: int) -> str:
    return f"{count} cell" if count == 1 else f"{count} cells"


def load_rows(
    value: str, base: Path, manifest_file: str, where: Location, field: str
) -> Rows | list[Problem]:
    """The CSV file `value` (relative to `base`) as Rows, or the problems found in it."""
    shown = os.path.normpath(os.path.join(os.path.dirname(manifest_file), value))
    try:
        text = read_regular(base / value, MAX_ROWS_BYTES, "a regular file").decode("utf-8-sig")
    except OSError as exc:
        message = f"cannot read CSV file '{value}': {reason(exc)}"
        return [Problem(where.file, where.line, where.column, field, message)]
    except Refused as exc:
        return [Problem(where.file, where.line, where.column, field, f"CSV file '{value}' {exc}")]
    except UnicodeDecodeError as exc:
        return [Problem(shown, None, None, "", f"is not UTF-8 text (bad byte at offset {exc.start})")]
    reader = _CsvReader(shown)
    reader.read(text)
    if reader.problems:
        return reader.problems
    return Rows(shown, reader.header, tuple(reader.rows), tuple(reader.lines))
