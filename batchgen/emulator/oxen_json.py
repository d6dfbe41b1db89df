"""JSON bodies read as oxen-server reads them: ``serde_json::from_str`` into a struct whose fields
are required or ``Option``, unknown fields ignored, and serde's wording when that fails (its
``line``/``column`` are approximated by the end of the body).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

Kind = Literal["string", "bool", "usize", "array"]
Field = tuple[Kind, bool]  # (type, required)

_EXPECTED: dict[Kind, str] = {
    "string": "a string",
    "bool": "a boolean",
    "usize": "usize",
    "array": "a sequence",
}


def _position(text: str) -> str:
    stripped = text.rstrip()
    return f"line {stripped.count(chr(10)) + 1} column {len(stripped.rsplit(chr(10), 1)[-1])}"


def _describe(value: Any) -> str:
    """A JSON value as serde's ``Unexpected`` names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f"string {json.dumps(value)}"
    return "sequence" if isinstance(value, list) else "map"


def _fits(kind: Kind, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "usize":
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64
    return isinstance(value, list)


def check_struct(value: Any, fields: Mapping[str, Field], struct: str, text: str) -> dict[str, Any] | str:
    """``value`` (a parsed JSON value) as the struct ``fields`` describe, or serde's error."""
    where = _position(text)
    if not isinstance(value, dict):
        return f"invalid type: {_describe(value)}, expected struct {struct} at {where}"
    found: dict[str, Any] = {}
    for name, (kind, required) in fields.items():
        if name not in value and required:
            return f"missing field `{name}` at {where}"
        item = value.get(name)
        if (item is not None or required) and not _fits(kind, item):
            return f"invalid type: {_describe(item)}, expected {_EXPECTED[kind]} at {where}"
        found[name] = item
    return found


def parse_struct(text: str, fields: Mapping[str, Field], struct: str) -> dict[str, Any] | str:
    """``serde_json::from_str::<struct>(text)``: the fields, or serde's error message."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return check_struct(value, fields, struct, text)
