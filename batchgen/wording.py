"""Wording of problems: field paths, short value renderings, jsonschema errors as sentences, "did you mean".

A leaf: imports nothing from batchgen, and jsonschema only for type checking (an error object is
only read here), so reading a manifest does not load the request validator.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jsonschema

__all__ = ["URL_EXPECTED", "describe_error", "describe_value", "did_you_mean", "format_path", "frozen_json"]

#: What a field that takes a URL accepts, as said in problems.
URL_EXPECTED = "expected an http(s) URL, a data: URI or an asset reference like {asset:NAME}"


def format_path(path: Iterable[str | int]) -> str:
    """("jobs", 2, "multi_prompt", 1, "duration") -> "jobs[2].multi_prompt[1].duration"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def describe_value(value: Any, limit: int = 60) -> str:
    """A short JSON rendering of a value for messages."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


def _type_words(expected: Any) -> str:
    kinds = [str(k) for k in (expected if isinstance(expected, list) else [expected])]
    if kinds == ["boolean"]:
        return "true or false"
    words = [_TYPE_WORDS.get(k, k) for k in kinds]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    kind = "a string" if isinstance(value, str) else ("an integer" if isinstance(value, int) else "a number")
    return f"{kind} {describe_value(value)}"


_BOUND_SYMBOLS = {"minimum": "≥", "maximum": "≤", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


def _bound_message(error: jsonschema.ValidationError) -> str:
    symbol = _BOUND_SYMBOLS[str(error.validator)]
    return f"must be {symbol} {error.validator_value}, got {describe_value(error.instance)}"


def _size_message(error: jsonschema.ValidationError) -> str:
    limit = error.validator_value
    instance = error.instance
    size = len(instance) if isinstance(instance, str | list) else 0
    if error.validator == "minItems":
        return "must not be empty" if limit == 1 else f"needs at least {limit} items"
    if error.validator == "maxItems":
        return f"has {size} items; at most {limit} allowed"
    if error.validator == "minLength":
        return "must not be empty" if limit == 1 else f"needs at least {limit} characters"
    return f"is {size} characters long; at most {limit} allowed"


def _duplicate_message(items: Any) -> str:
    seen: set[Any] = set()
    for item in items if isinstance(items, list) else []:
        frozen = frozen_json(item)
        if frozen in seen:
            return f"lists {describe_value(item)} more than once"
        seen.add(frozen)
    return "lists the same value more than once"


def frozen_json(value: Any) -> Any:
    """A hashable form of a JSON value, equal for values JSON Schema calls equal (1 == 1.0, True != 1)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, list):
        return ("list", tuple(frozen_json(item) for item in value))
    if isinstance(value, dict):
        return ("object", frozenset((key, frozen_json(item)) for key, item in value.items()))
    return (type(value).__name__, value)


def describe_error(error: jsonschema.ValidationError) -> str:
    """A jsonschema error as a short sentence saying what was expected and what was found."""
    kind = error.validator
    if kind == "type":
        return f"expected {_type_words(error.validator_value)}, got {_kind_of(error.instance)}"
    if kind == "enum":
        options = error.validator_value if isinstance(error.validator_value, list) else []
        choices = ", ".join(describe_value(v) for v in options)
        return f"{describe_value(error.instance)} is not one of {choices}"
    if kind == "const":
        return f"must be {describe_value(error.validator_value)}, got {describe_value(error.instance)}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return _bound_message(error)
    if kind in ("minItems", "maxItems", "minLength", "maxLength"):
        return _size_message(error)
    if kind == "format" and error.validator_value == "uri":
        return f"{describe_value(error.instance)} is not a URL: {URL_EXPECTED}"
    if kind == "uniqueItems":
        return _duplicate_message(error.instance)
    if kind is None:
        return "is not allowed here"
    return error.message


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """A "did you mean 'x'?" hint, or None when nothing is close."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=cutoff)
    return f"did you mean '{close[0]}'?" if close else None
