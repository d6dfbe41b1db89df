"""results.csv and results.jsonl: the CSV never lets a server's text run as a spreadsheet formula."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from batchgen.report import FIELDS, write_results


def row(**values: Any) -> dict[str, Any]:
    """A results row with every field, `values` overriding the defaults."""
    base: dict[str, Any] = dict.fromkeys(FIELDS)
    base.update(index=0, key="ab" * 32, name="hero", replica=1, model="m", state="failed", attempts=1)
    base.update(values)
    return base


@pytest.mark.parametrize(
    "text",
    [
        '=HYPERLINK("http://evil.test","click")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1:A9)",
        "\t=1+1",
        "\r=1+1",
    ],
)
def test_server_text_that_looks_like_a_formula_is_written_as_text_in_the_csv_only(
    tmp_path: Path, text: str
) -> None:
    """An error message, generation id or name starting with = + - @ tab or CR gets a leading ' in
    results.csv; results.jsonl keeps the exact value."""
    rows = [row(error=text, generation_id=text, name=text)]
    write_results(tmp_path, rows)
    with (tmp_path / "results.csv").open(newline="", encoding="utf-8") as file:
        (cells,) = list(csv.DictReader(file))
    assert cells["error"] == cells["generation_id"] == cells["name"] == "'" + text
    (line,) = (tmp_path / "results.jsonl").read_text("utf-8").splitlines()
    assert json.loads(line)["error"] == text and json.loads(line)["name"] == text


def test_ordinary_cells_are_written_unchanged(tmp_path: Path) -> None:
    """Text that does not start like a formula, numbers and empty cells are written as they are."""
    rows = [row(error="Insufficient credits (a=1)", generation_id="5f0c-=x", cost_usd="1.120", size=2048)]
    write_results(tmp_path, rows)
    with (tmp_path / "results.csv").open(newline="", encoding="utf-8") as file:
        (cells,) = list(csv.DictReader(file))
    assert cells["error"] == "Insufficient credits (a=1)"
    assert (cells["generation_id"], cells["cost_usd"], cells["size"], cells["sha256"]) == (
        "5f0c-=x",
        "1.120",
        "2048",
        "",
    )


def test_line_breaks_inside_server_text_stay_inside_their_cell(tmp_path: Path) -> None:
    """A CR or LF inside an error message is quoted, so every job stays one CSV record."""
    rows = [row(index=0, error="line one\rline two"), row(index=1, error="a\nb\r\nc")]
    write_results(tmp_path, rows)
    with (tmp_path / "results.csv").open(newline="", encoding="utf-8") as file:
        records = list(csv.DictReader(file))
    assert [(r["index"], r["error"]) for r in records] == [("0", "line one\rline two"), ("1", "a\nb\r\nc")]
