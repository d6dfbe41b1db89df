"""Bounded YAML reading with positions: the manifest's text -> plain data, each value's line and column.

Refused as located problems, never a hang or a crash: files that are not regular or too large,
nesting deeper than MAX_NESTING_DEPTH, alias bombs, recursive aliases, duplicate keys, unusual tags.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import MappingEndEvent, MappingStartEvent, SequenceEndEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from batchgen.errors import ManifestError, Problem
from batchgen.manifest.files import Refused, read_regular, reason
from batchgen.manifest.model import PathTuple
from batchgen.wording import format_path

__all__ = ["MAX_MANIFEST_BYTES", "MAX_MANIFEST_VALUES", "MAX_NESTING_DEPTH", "Tree", "compose", "read_text"]

# Limits on hostile or mistaken input: each is refused as a located problem (exit 2), never a hang,
# a crash or unbounded memory.
#: The largest manifest read. Far above any hand-written one (big batches come from `matrix:` and
#: `rows:`), and small enough for PyYAML's pure-Python parser to get through in seconds.
MAX_MANIFEST_BYTES = 8 * 1024 * 1024
#: The deepest nesting of mappings and lists. A manifest needs about six levels; PyYAML's composer
#: and every check after it recurse once per level, so thousands of levels would exhaust the stack.
MAX_NESTING_DEPTH = 32
#: The most values a manifest may expand to. A YAML alias is expanded each time it is used, so ten
#: levels of anchors in 1 KB would otherwise expand to billions of values (an "alias bomb").
MAX_MANIFEST_VALUES = 250_000

_TAG = "tag:yaml.org,2002:"
#: Half of a UTF-16 surrogate pair, from an escape like "\ud83d": UTF-8 cannot encode it on its own.
_SURROGATE = re.compile("[\ud800-\udfff]")
_PLAIN_TAGS = frozenset({_TAG + t for t in ("null", "bool", "int", "float")})


class Tree:
    """Node tree -> plain data, recording the position of every value and key, and duplicate keys."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.values: dict[PathTuple, tuple[int, int]] = {}
        self.keys: dict[PathTuple, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        self._active: set[int] = set()
        self._constructor = SafeConstructor()
        self._count = 0  # values produced so far, each use of an alias counted again

    def problem(self, node: Node, path: PathTuple, message: str, hint: str | None = None) -> None:
        line, column = _mark(node)
        self.problems.append(Problem(self.file, line, column, format_path(path), message, hint))

    def _refuse(self, node: Node, path: PathTuple, message: str, hint: str) -> ManifestError:
        """Stop converting: the problem is shown at the top-level entry being expanded (e.g. `vars.x`)."""
        top = path[:2]
        line, column = self.values.get(top) or _mark(node)
        self.problems.append(Problem(self.file, line, column, format_path(top), message, hint))
        return ManifestError(self.problems)

    def convert(self, node: Node, path: PathTuple) -> Any:
        self._count += 1
        if self._count > MAX_MANIFEST_VALUES:
            raise self._refuse(
                node,
                path,
                f"the manifest expands to more than {MAX_MANIFEST_VALUES:,} values "
                "(each use of a YAML alias is expanded again)",
                "use aliases sparingly, and matrix: or rows: for large batches",
            )
        self.values[path] = _mark(node)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._active:
            self.problem(node, path, "refers to itself (a recursive YAML alias)")
            return None
        if len(self._active) >= MAX_NESTING_DEPTH:  # aliases and merges can nest deeper than the text
            raise self._refuse(
                node,
                path,
                f"nests mappings and lists more than {MAX_NESTING_DEPTH} levels deep (through YAML aliases)",
                "a manifest needs only a few levels: flatten these aliases",
            )
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.convert(child, (*path, i)) for i, child in enumerate(node.value)]
            assert isinstance(node, MappingNode)
            return self._mapping(node, path)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: ScalarNode, path: PathTuple) -> Any:
        tag = node.tag
        if tag == _TAG + "str" or tag == _TAG + "timestamp":
            if node.value.isascii() or not _SURROGATE.search(node.value):
                return node.value
            try:  # PyYAML keeps a "\ud83d\ude00" escape as two halves: joined, they are one character
                return node.value.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
            except UnicodeDecodeError:
                self.problem(
                    node,
                    path,
                    "holds half of a UTF-16 surrogate pair, which no request can carry",
                    "write the character itself, or its whole escape (\\U0001F600 or \\ud83d\\ude00)",
                )
                return None
        if tag not in _PLAIN_TAGS:
            self.problem(
                node, path, f"unsupported YAML tag {tag!r}", "write plain strings, numbers and booleans"
            )
            return None
        if ":" in node.value and tag != _TAG + "null":
            return node.value  # YAML 1.1 base-60 numbers: 16:9 stays the string "16:9"
        value = self._constructor.yaml_constructors[tag](self._constructor, node)
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(node, path, f"{node.value} is not a finite number")
            return None
        return value

    def _mapping(self, node: MappingNode, path: PathTuple) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                self._merge(value_node, path, merged)
        out: dict[str, Any] = {}
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            if key in first:
                hint = "a key may appear once per mapping; YAML would silently keep the last one"
                self.problem(
                    key_node, (*path, key), f"duplicate key (first written on line {first[key]})", hint
                )
                continue
            first[key] = _mark(key_node)[0]
            self.keys[(*path, key)] = _mark(key_node)
            out[key] = self.convert(value_node, (*path, key))
        for key, value in merged.items():
            out.setdefault(key, value)
        return out

    def _merge(self, node: Node, path: PathTuple, into: dict[str, Any]) -> None:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for source in sources:
            value = self.convert(source, path)
            if not isinstance(value, dict):
                self.problem(source, path, "a YAML merge key (<<) needs a mapping")
                continue
            for key, item in value.items():
                into.setdefault(key, item)

    def _key(self, node: Node, path: PathTuple) -> str | None:
        if isinstance(node, ScalarNode) and node.tag == _TAG + "str":
            text: str | None = self._scalar(node, path)  # its surrogate halves joined, or refused
            return text
        shown = node.value if isinstance(node, ScalarNode) else "a collection"
        self.problem(node, path, f"mapping keys must be text, got {shown!r}", "quote the key")
        return None


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def read_text(path: Path, file: str) -> str:
    """The manifest's text; ManifestError if it is unreadable, not a regular file, too large or not UTF-8."""
    try:
        data = read_regular(path, MAX_MANIFEST_BYTES, "a regular file")
    except OSError as exc:
        raise ManifestError(
            [Problem(file, None, None, "", f"cannot read the manifest: {reason(exc)}")]
        ) from None
    except Refused as exc:
        hint = "give the path of a manifest file"
        if "limit" in str(exc):
            hint = "a manifest is written by hand: list large sets of values in a CSV named by `rows:`"
        raise ManifestError([Problem(file, None, None, "", f"the manifest {exc}", hint)]) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problem = Problem(
            file, line, None, "", f"the manifest is not UTF-8 text (bad byte at offset {exc.start})"
        )
        raise ManifestError([problem]) from None


def _yaml_hint(problem: str) -> str | None:
    if "'\\t'" in problem:
        return "indent with spaces, not tabs"
    if problem.startswith("mapping values are not allowed"):
        return "check this line's indentation, and quote values that contain ': '"
    return None


class _TooDeep(Exception):
    def __init__(self, mark: Any) -> None:  # a yaml.Mark, or libyaml's own Mark (same line and column)
        super().__init__()
        self.line: int = mark.line
        self.column: int = mark.column


class _Loader(yaml.SafeLoader):
    """SafeLoader that stops at MAX_NESTING_DEPTH, before PyYAML's recursive composer exhausts the stack."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if not self.check_event(MappingStartEvent, SequenceStartEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_NESTING_DEPTH:
            raise _TooDeep(self.current_event.start_mark)  # set by check_event
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _compose_with_libyaml(text: str) -> Node | None:
    """The node tree by libyaml (about eight times faster than PyYAML's Python parser on a large manifest).

    libyaml's parser keeps its own stack, but PyYAML's C composer recurses once per level: the nesting is
    measured on the event stream first, so a hostile file is refused before it can exhaust the C stack.
    """
    depth = 0
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        kind = type(event)
        if kind is MappingStartEvent or kind is SequenceStartEvent:
            depth += 1
            if depth > MAX_NESTING_DEPTH:
                raise _TooDeep(event.start_mark)
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            depth -= 1
    node: Node | None = yaml.compose(text, Loader=yaml.CSafeLoader)
    return node


def compose(text: str, file: str) -> Node:
    """The manifest's YAML node tree; ManifestError for invalid YAML, too deep nesting or an empty file.

    libyaml reads it when PyYAML was built with it; a file it rejects is read again by the Python parser,
    whose messages name the offending character or alias.
    """
    try:
        if yaml.__with_libyaml__:
            try:
                return _checked(_compose_with_libyaml(text), file)
            except yaml.YAMLError:
                pass
        node = yaml.compose(text, Loader=_Loader)
    except _TooDeep as exc:
        message = f"mappings and lists are nested more than {MAX_NESTING_DEPTH} levels deep"
        hint = "a manifest needs only a few levels: look for brackets that are never closed"
        problem = Problem(file, exc.line + 1, exc.column + 1, "", message, hint)
        raise ManifestError([problem]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = "invalid YAML: " + (exc.problem or "syntax error")
        if exc.context == "expected a single document in the stream":
            message = "invalid YAML: a manifest is one YAML document, but this file has another after '---'"
        elif exc.context:
            message += f" ({exc.context}"
            message += f" on line {exc.context_mark.line + 1})" if exc.context_mark else ")"
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise ManifestError(
            [Problem(file, line, column, "", message, _yaml_hint(exc.problem or ""))]
        ) from None
    except yaml.YAMLError as exc:
        raise ManifestError([Problem(file, None, None, "", f"invalid YAML: {exc}")]) from None
    return _checked(node, file)


def _checked(node: Node | None, file: str) -> Node:
    if node is None:
        raise ManifestError([Problem(file, None, None, "", "the manifest is empty")])
    return node
