"""Checking a registry answer before it is used: sizes, depth, `$ref` expansion, patterns, prices.

Also the OpenAPI-flavoured schema dialect (`normalise_schema`), which validation uses too.

A model object from the registry is input like any other: a broken or hostile answer must give one
clear error (ModelDescriptionError, raised by `ModelSpec.from_api`), never a traceback, a hang or a
stack overflow in jsonschema. For scale: the documented Kling schema has about 60 values, 6 levels
and 3 KB of text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import jsonschema
from jsonschema import Draft202012Validator

from batchgen.registry.pricing import rate
from batchgen.wording import describe_value

__all__ = [
    "MAX_MODEL_DEPTH",
    "MAX_MODEL_TEXT",
    "MAX_MODEL_VALUES",
    "MAX_UNIT_PRICE_USD",
    "Unusable",
    "check_prices",
    "check_size",
    "checked_schema",
    "json_kind",
    "normalise_schema",
]

#: Deepest nesting of objects and arrays in a model object, and in its request schema once its $refs
#: are expanded: normalise_schema and jsonschema recurse once per level or more.
MAX_MODEL_DEPTH = 32
#: Most values (objects, arrays and scalars) in a model object, and in its request schema once its
#: $refs are expanded (a few $refs used many times each would otherwise expand exponentially).
MAX_MODEL_VALUES = 50_000
#: Most characters in the keys and strings of a model object (or of its expanded request schema).
MAX_MODEL_TEXT = 1_000_000
#: The highest price per second or per image taken at face value (the documented ones are $0.012 to
#: $0.448): above it a quote is nonsense, and formatting an absurd Decimal exponent would fail.
MAX_UNIT_PRICE_USD = 10_000

# JSON Schema keywords whose value is a subschema, a list of subschemas, or a map of name -> subschema
# (draft 2020-12); every other keyword holds data (enum, const, default, ...) or a constraint.
_SUBSCHEMA = frozenset(
    {"additionalProperties", "contains", "propertyNames", "not", "if", "then", "else", "items"}
    | {"unevaluatedItems", "unevaluatedProperties", "contentSchema"}
)
_SUBSCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SUBSCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_DYNAMIC_REFS = frozenset({"$dynamicRef", "$recursiveRef"})


class Unusable(Exception):
    """Why a model object cannot be used (raised as ModelDescriptionError by ModelSpec.from_api)."""


def json_kind(value: Any) -> str:
    """What kind of JSON value `value` is, for messages: "an object", "a number 3", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str | int | float):
        kind = "a string" if isinstance(value, str) else "a number"
        return f"{kind} {describe_value(value)}"
    return type(value).__name__


def check_size(value: Any, what: str) -> None:
    """Refuse `value` when it is too deep, has too many values or too much text (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    values = 1
    text = 0
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            text += len(item)
        elif isinstance(item, Mapping | list):
            if depth > MAX_MODEL_DEPTH:
                raise Unusable(f"{what} nests objects and arrays more than {MAX_MODEL_DEPTH} levels deep")
            values += len(item)
            if values > MAX_MODEL_VALUES:
                raise Unusable(f"{what} has more than {MAX_MODEL_VALUES:,} values")
            if isinstance(item, Mapping):
                text += sum(len(key) for key in item if isinstance(key, str))
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
        if text > MAX_MODEL_TEXT:
            raise Unusable(f"{what} holds more than {MAX_MODEL_TEXT:,} characters of text")


def check_prices(pricing: Mapping[str, Any] | None) -> None:
    """Refuse a `cost_per_*` price over MAX_UNIT_PRICE_USD."""
    for key, value in (pricing or {}).items():
        price = rate(value) if str(key).startswith("cost_per_") else None  # not a number: no price
        if price is not None and price > MAX_UNIT_PRICE_USD:
            raise Unusable(
                f"its price {key} = {describe_value(value)} is over ${MAX_UNIT_PRICE_USD:,} per unit"
            )


def checked_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` with its $refs expanded, once it is known to be usable; `Unusable` otherwise."""
    expanded = _RefExpander(schema).expand()
    check_size(expanded, "its request schema (with its $refs expanded)")
    try:
        Draft202012Validator.check_schema(normalise_schema(expanded))
    except jsonschema.SchemaError as exc:
        raise Unusable(f"its request schema is not valid JSON Schema: {_shorten(exc.message)}") from None
    return expanded


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compile_pattern(pattern: str) -> None:
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        reason = f"its request schema has a pattern Python's re cannot compile: {describe_value(pattern)}"
        raise Unusable(f"{reason} ({_shorten(str(exc), 80)})") from None


class _RefExpander:
    """Copies a schema with every `$ref` replaced by what it points to, so that validating never has
    to resolve one: only JSON pointers into the schema itself, and no cycles. Every `pattern` (and
    `patternProperties` name) met on the way is compiled.

    A `$ref` with sibling keywords becomes one more `allOf` entry, as in draft 2020-12. The root's
    `$defs`/`definitions` are dropped once expanded into place.
    """

    def __init__(self, root: Mapping[str, Any]) -> None:
        self._root = root
        self._active = [id(root)]  # targets being expanded: meeting one again is a cycle
        self._values = 0

    def expand(self) -> dict[str, Any]:
        out = self._schema(self._root, 1)
        return out if isinstance(out, dict) else {"allOf": [out]}

    def _schema(self, node: Any, depth: int) -> Any:
        if not isinstance(node, Mapping):
            return node  # a boolean schema, or something check_schema refuses
        self._values += 1
        if depth > MAX_MODEL_DEPTH:
            raise Unusable(
                f"its request schema nests more than {MAX_MODEL_DEPTH} levels deep with its $refs expanded"
            )
        if self._values > MAX_MODEL_VALUES:
            raise Unusable(
                f"its request schema has more than {MAX_MODEL_VALUES:,} subschemas with its $refs expanded"
            )
        skipped = {"$ref", "$defs", "definitions"} if node is self._root else {"$ref"}
        out = {key: self._keyword(key, value, depth) for key, value in node.items() if key not in skipped}
        if "$ref" not in node:
            return out
        target = self._follow(node["$ref"], depth)
        if not out:
            return target
        earlier = out.get("allOf")
        out["allOf"] = (
            [*earlier, target] if isinstance(earlier, list) else [target] if earlier is None else earlier
        )
        return out

    def _keyword(self, key: str, value: Any, depth: int) -> Any:
        if key in _DYNAMIC_REFS:
            raise Unusable(f"its request schema uses {key}, which batchgen does not follow")
        if key == "pattern" and isinstance(value, str):
            _compile_pattern(value)
        if key in _SUBSCHEMA:
            return self._schema(value, depth + 1)
        if key in _SUBSCHEMA_LISTS and isinstance(value, list):
            return [self._schema(item, depth + 2) for item in value]
        if key in _SUBSCHEMA_MAPS and isinstance(value, Mapping):
            if key == "patternProperties":
                for name in value:
                    _compile_pattern(str(name))
            return {name: self._schema(item, depth + 2) for name, item in value.items()}
        return value  # data or a constraint: kept as it is

    def _follow(self, ref: Any, depth: int) -> Any:
        target = self._resolve(ref)
        if id(target) in self._active:
            raise Unusable(
                f"its request schema is recursive: $ref {describe_value(ref)} leads back to itself"
            )
        self._active.append(id(target))
        try:
            return self._schema(target, depth)
        finally:
            self._active.pop()

    def _resolve(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise Unusable(
                f"its request schema has a $ref to another document ({describe_value(ref)}); "
                "batchgen follows only references within the schema"
            )
        pointer = unquote(ref[1:])
        if pointer and not pointer.startswith("/"):
            raise Unusable(
                f"its request schema has a $ref to an anchor ({describe_value(ref)}); batchgen follows only JSON pointers"
            )
        node: Any = self._root
        for token in pointer.split("/")[1:]:
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and token in node:
                node = node[token]
            elif isinstance(node, list) and _is_index(token, len(node)):
                node = node[int(token)]
            else:
                raise Unusable(
                    f"its request schema has a $ref that points to nothing ({describe_value(ref)})"
                )
        return node


def _is_index(token: str, length: int) -> bool:
    return token.isascii() and token.isdigit() and len(token) < 10 and int(token) < length


# ---------------------------------------------------------------- the registry's schema dialect


def normalise_schema(schema: Any, *, top: bool = True) -> Any:
    """OpenAPI-flavoured schema -> draft 2020-12 (`nullable`, boolean exclusive bounds, open top level)."""
    if isinstance(schema, list):
        return [normalise_schema(item, top=False) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {k: normalise_schema(v, top=False) for k, v in schema.items()}
    if out.get("nullable") is True:
        _make_nullable(out)
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), bool) and out.pop(bound) and limit in out:
            out[bound] = out.pop(limit)
    if top and out.get("additionalProperties") is False:
        del out["additionalProperties"]  # the registry may omit parameters the model accepts
    return out


def _make_nullable(node: dict[str, Any]) -> None:
    kind = node.get("type")
    if isinstance(kind, str):
        node["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        node["type"] = [*kind, "null"]
    if isinstance(node.get("enum"), list) and None not in node["enum"]:
        node["enum"] = [*node["enum"], None]
