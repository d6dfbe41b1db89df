"""YAML manifest -> `Manifest`: line-tracking load, JSON Schema check, assets and CSV rows, located errors.

Reads the manifest, the CSV files it names and its local asset files; nothing else (no network).
Every problem found is collected and raised together as one `ManifestError`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import stat
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import yaml
from yaml.constructor import SafeConstructor
from yaml.events import MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from batchgen.errors import ManifestError, Problem
from batchgen.media import image_type
from batchgen.templates import ASSET_PLACEHOLDER_PREFIX, is_identifier
from batchgen.wording import describe_error, describe_value, did_you_mean, format_path

__all__ = [
    "BUILTIN_VARS",
    "JOB_SETTINGS",
    "MAX_ASSET_BYTES",
    "MAX_MANIFEST_BYTES",
    "MAX_MANIFEST_VALUES",
    "MAX_NESTING_DEPTH",
    "MAX_ROWS_BYTES",
    "RUN_DEFAULTS",
    "UPLOAD_DEFAULTS",
    "Asset",
    "JobSpec",
    "LocalAsset",
    "Location",
    "Manifest",
    "Positions",
    "Rows",
    "UrlAsset",
    "load_manifest",
    "manifest_schema",
]

PathTuple = tuple[str | int, ...]

#: Variables batchgen defines for every job; manifests may not define them.
BUILTIN_VARS = ("name", "replica", "index", "model", "key")
#: Keys of a job spec that steer expansion; every other key is a request field.
JOB_SETTINGS = frozenset({"name", "model", "vars", "matrix", "rows", "repeat", "num_generations"})
#: What the `run:` settings default to (the manifest exposes only what it wrote).
RUN_DEFAULTS: Mapping[str, Any] = {"concurrency": 8, "downloads": 4, "retries": 2}
#: What `upload:` keys default to (filled in when `upload:` is present).
UPLOAD_DEFAULTS: Mapping[str, Any] = {"branch": "main", "prefix": "batchgen-assets", "create": False}
MAX_ASSET_BYTES = 50 * 1024 * 1024
MAX_CSV_PROBLEMS = 10
# Limits on hostile or mistaken input: each is refused as a located problem (exit 2), never a hang,
# a crash or unbounded memory.
#: The largest manifest read. Far above any hand-written one (big batches come from `matrix:` and
#: `rows:`), and small enough for PyYAML's pure-Python parser to get through in seconds.
MAX_MANIFEST_BYTES = 8 * 1024 * 1024
#: The largest rows CSV read: 100,000 rows of a few hundred bytes each, with room to spare.
MAX_ROWS_BYTES = 64 * 1024 * 1024
#: The deepest nesting of mappings and lists. A manifest needs about six levels; PyYAML's composer
#: and every check after it recurse once per level, so thousands of levels would exhaust the stack.
MAX_NESTING_DEPTH = 32
#: The most values a manifest may expand to. A YAML alias is expanded each time it is used, so ten
#: levels of anchors in 1 KB would otherwise expand to billions of values (an "alias bomb").
MAX_MANIFEST_VALUES = 250_000

_SAFE_NAME = re.compile(r"\w[\w.-]*")
_RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)} | {f"LPT{i}" for i in range(1, 10)}
)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")
_DATA_URI = re.compile(r"data:image/[A-Za-z0-9.+-]+(;[^,]*)?,.+", re.DOTALL)
_HINTS = {
    ("version",): "start the manifest with `version: 1`",
    ("name",): "it names the run directory: e.g. `name: spring-campaign`",
    ("jobs",): "list at least one job: `jobs: [{name: hero, prompt: ...}]`",
    ("jobs", "name"): "every job needs a name: `- name: hero`",
    ("upload", "namespace"): "e.g. `upload: {namespace: acme, repo: assets}`",
    ("upload", "repo"): "e.g. `upload: {namespace: acme, repo: assets}`",
}
_DEFAULTS_HINTS = {
    "model": "set `model:` at the top level (for every job) or in a job",
}


# ---------------------------------------------------------------- the result


@dataclass(frozen=True, slots=True)
class Location:
    """A place in an input file (1-based line and column; None when unknown)."""

    file: str
    line: int | None
    column: int | None


@dataclass(frozen=True, slots=True)
class UrlAsset:
    """An asset given as an http(s) URL or a data: URI; sent as written."""

    name: str
    url: str


@dataclass(frozen=True, slots=True)
class LocalAsset:
    """A local image file, read at load time; uploaded once by the runner (content-addressed)."""

    name: str
    path: Path
    sha256: str
    size: int
    media_type: str

    @property
    def placeholder(self) -> str:
        """What requests carry until the runner substitutes the uploaded URL (see plan.resolve_request)."""
        return ASSET_PLACEHOLDER_PREFIX + self.sha256


Asset = UrlAsset | LocalAsset


@dataclass(frozen=True, slots=True)
class Rows:
    """A CSV file of variables: the header names them; each row is one set of values (strings)."""

    file: str
    header: tuple[str, ...]
    rows: tuple[Mapping[str, str], ...]
    lines: tuple[int, ...]  # the CSV line of each row


@dataclass(frozen=True, slots=True)
class Positions:
    """Where each value (and each mapping key) of the manifest was written: path -> (line, column)."""

    file: str
    values: Mapping[PathTuple, tuple[int, int]]
    keys: Mapping[PathTuple, tuple[int, int]]

    def at(self, path: PathTuple, *, key: bool = False) -> Location:
        """The location of `path` (its key when `key`), else of its nearest written ancestor."""
        found = self.keys.get(path) if key else None
        probe = path
        while found is None and probe:
            found = self.values.get(probe)
            probe = probe[:-1]
        found = found or self.values.get(())
        return Location(self.file, found[0], found[1]) if found else Location(self.file, None, None)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One entry of `jobs:`, before expansion."""

    index: int
    name: str
    model: str | None
    vars: Mapping[str, Any]
    matrix: Mapping[str, tuple[Any, ...]]
    rows: Rows | None
    repeat: int
    fields: Mapping[str, Any]  # the request fields written in the job
    location: Location


@dataclass(frozen=True, slots=True)
class Manifest:
    """A loaded, structurally valid manifest. Plan it with `plan.build_plan`."""

    path: Path
    file: str  # the manifest's name as shown in problems
    name: str
    model: str | None
    target_namespace: str | None
    defaults: Mapping[str, Any]
    assets: Mapping[str, Asset]
    vars: Mapping[str, Any]
    matrix: Mapping[str, tuple[Any, ...]]
    rows: Rows | None
    jobs: tuple[JobSpec, ...]
    output_pattern: str | None
    run: Mapping[str, Any]
    upload: Mapping[str, Any] | None
    positions: Positions = field(repr=False)


@cache
def _schema_text() -> str:
    return resources.files("batchgen").joinpath("data", "manifest.schema.json").read_text("utf-8")


def manifest_schema() -> dict[str, Any]:
    """The manifest's JSON Schema (draft 2020-12), as shipped in batchgen/data/manifest.schema.json."""
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(manifest_schema())


# ---------------------------------------------------------------- YAML with positions

_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = frozenset({_TAG + t for t in ("null", "bool", "int", "float")})


class _Tree:
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
            return node.value
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
            return str(node.value)
        shown = node.value if isinstance(node, ScalarNode) else "a collection"
        self.problem(node, path, f"mapping keys must be text, got {shown!r}", "quote the key")
        return None


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Refused(Exception):
    """A file that is not a regular file, or too large; the message completes "<the file> ..."."""


def _read_regular(path: Path, limit: int, expected: str) -> bytes:
    """The content of a regular file of at most `limit` bytes; `_Refused` otherwise (OSError passes).

    Checked before opening, then again on the open descriptor (the path may change in between). The
    open never blocks: O_NONBLOCK makes opening a FIFO return at once, and a FIFO is then refused.
    """
    _check_stat(os.stat(path), limit, expected)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as file:
        _check_stat(os.fstat(fd), limit, expected)
        data = file.read(limit + 1)  # never more than the limit, even from a file that grows
    if len(data) > limit:
        raise _Refused(f"is more than {limit} bytes; the limit is {limit}")
    return data


def _check_stat(status: os.stat_result, limit: int, expected: str) -> None:
    if not stat.S_ISREG(status.st_mode):
        raise _Refused(f"is {_file_kind(status.st_mode)}, not {expected}")
    if status.st_size > limit:
        raise _Refused(f"is {status.st_size} bytes; the limit is {limit}")


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def _read_text(path: Path, file: str) -> str:
    try:
        data = _read_regular(path, MAX_MANIFEST_BYTES, "a regular file")
    except OSError as exc:
        raise ManifestError(
            [Problem(file, None, None, "", f"cannot read the manifest: {_reason(exc)}")]
        ) from None
    except _Refused as exc:
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


def _reason(exc: OSError) -> str:
    return (
        (exc.strerror or type(exc).__name__).lower()
        if not isinstance(exc, FileNotFoundError)
        else "not found"
    )


def _yaml_hint(problem: str) -> str | None:
    if "'\\t'" in problem:
        return "indent with spaces, not tabs"
    if problem.startswith("mapping values are not allowed"):
        return "check this line's indentation, and quote values that contain ': '"
    return None


class _TooDeep(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__()
        self.mark = mark


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


def _compose(text: str, file: str) -> Node:
    try:
        node = yaml.compose(text, Loader=_Loader)
    except _TooDeep as exc:
        message = f"mappings and lists are nested more than {MAX_NESTING_DEPTH} levels deep"
        hint = "a manifest needs only a few levels: look for brackets that are never closed"
        problem = Problem(file, exc.mark.line + 1, exc.mark.column + 1, "", message, hint)
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
    if node is None:
        raise ManifestError([Problem(file, None, None, "", "the manifest is empty")])
    return node


# ---------------------------------------------------------------- JSON Schema errors -> problems


def _schema_problems(data: Any, positions: Positions) -> Iterator[Problem]:
    for error in _validator().iter_errors(data):
        yield from _error_problems(error, positions)


def _error_problems(error: jsonschema.ValidationError, positions: Positions) -> Iterator[Problem]:
    path: PathTuple = tuple(error.absolute_path)
    if "propertyNames" in error.schema_path:
        yield _name_problem(error, path, positions)
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        known = list(schema.get("properties", {}))
        for key in [k for k in error.instance if k not in known]:
            hint = did_you_mean(key, known) or "allowed here: " + ", ".join(known)
            yield _problem(positions.at((*path, key), key=True), (*path, key), f"unknown key '{key}'", hint)
    elif error.validator == "required" and isinstance(error.instance, dict):
        required = error.validator_value if isinstance(error.validator_value, list) else []
        for key in [k for k in required if k not in error.instance]:
            context = tuple(p for p in path if isinstance(p, str))
            where = positions.at(path)
            yield _problem(where, path, f"missing required key '{key}'", _HINTS.get((*context, key)))
    else:
        yield _problem(positions.at(path), path, describe_error(error), _value_hint(path, error.instance))


def _name_problem(error: jsonschema.ValidationError, path: PathTuple, positions: Positions) -> Problem:
    key = str(error.instance)
    where = positions.at((*path, key), key=True)
    if error.validator == "not":
        message = f"'{key}' cannot be set in defaults"
        return _problem(where, (*path, key), message, _DEFAULTS_HINTS.get(key, f"set `{key}:` in each job"))
    if path and path[-1] == "assets":
        message = f"'{key}' is not a valid asset name: use letters, digits, '_', '.' and '-'"
    else:
        message = (
            f"'{key}' is not a valid variable name: use letters, digits and '_', not starting with a digit"
        )
    return _problem(where, (*path, key), message)


def _value_hint(path: PathTuple, value: Any) -> str | None:
    if path and path[-1] == "num_generations":
        count = value if isinstance(value, int) and not isinstance(value, bool) and value > 1 else "N"
        return (
            f"batchgen tracks every generation as its own job (own key, retry and file): "
            f"use `repeat: {count}` for {count} generations of the same request"
        )
    return None


def _problem(where: Location, path: PathTuple, message: str, hint: str | None = None) -> Problem:
    return Problem(where.file, where.line, where.column, format_path(path), message, hint)


# ---------------------------------------------------------------- assets


def _load_asset(name: str, value: str, base: Path) -> Asset | str:
    """The asset, or a message saying what is wrong with it."""
    scheme = _SCHEME.match(value)
    if scheme is None:
        return _load_local(name, value, base)
    kind = scheme.group(1).lower()
    if kind in ("http", "https"):
        try:
            host = urlsplit(value).hostname
        except ValueError:
            host = None
        return UrlAsset(name, value) if host else f"{describe_value(value)} is not a valid URL (no host)"
    if kind == "data":
        if _DATA_URI.fullmatch(value):
            return UrlAsset(name, value)
        return f"{describe_value(value)} is not an image data URI: expected data:image/<type>;base64,<data>"
    if kind == "batchgen-asset":
        return "batchgen-asset: placeholders are made by batchgen; give a URL or a file path"
    return f"unsupported URL scheme '{kind}': expected an http(s) URL, a data: URI or a local file path"


def _load_local(name: str, value: str, base: Path) -> LocalAsset | str:
    path = base / value
    try:
        data = _read_regular(path, MAX_ASSET_BYTES, "an image file")
    except OSError as exc:
        return f"cannot read asset file '{value}': {_reason(exc)}"
    except _Refused as exc:
        return f"asset file '{value}' {exc}"
    media_type = image_type(data)
    if media_type is None:
        return f"asset file '{value}' is not a PNG, JPEG, WebP or GIF image"
    return LocalAsset(name, path.resolve(), hashlib.sha256(data).hexdigest(), len(data), media_type)


# ---------------------------------------------------------------- CSV rows


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


def _load_rows(
    value: str, base: Path, manifest_file: str, where: Location, field: str
) -> Rows | list[Problem]:
    shown = os.path.normpath(os.path.join(os.path.dirname(manifest_file), value))
    try:
        text = _read_regular(base / value, MAX_ROWS_BYTES, "a regular file").decode("utf-8-sig")
    except OSError as exc:
        message = f"cannot read CSV file '{value}': {_reason(exc)}"
        return [Problem(where.file, where.line, where.column, field, message)]
    except _Refused as exc:
        return [Problem(where.file, where.line, where.column, field, f"CSV file '{value}' {exc}")]
    except UnicodeDecodeError as exc:
        return [Problem(shown, None, None, "", f"is not UTF-8 text (bad byte at offset {exc.start})")]
    reader = _CsvReader(shown)
    reader.read(text)
    if reader.problems:
        return reader.problems
    return Rows(shown, reader.header, tuple(reader.rows), tuple(reader.lines))


# ---------------------------------------------------------------- checks beyond the schema


class _Checker:
    """Semantic checks on schema-shaped data (each guarded, since the schema may have failed)."""

    def __init__(self, data: dict[str, Any], positions: Positions, base: Path) -> None:
        self.data = data
        self.positions = positions
        self.base = base
        self.problems: list[Problem] = []
        self.assets: dict[str, Asset] = {}
        self.rows: dict[PathTuple, Rows] = {}

    def add(self, path: PathTuple, message: str, hint: str | None = None, *, key: bool = False) -> None:
        self.problems.append(_problem(self.positions.at(path, key=key), path, message, hint))

    def run(self) -> None:
        self._check_safe_name(("name",), self.data.get("name"), "it names the run directory")
        self._check_assets()
        self._check_var_sources(())
        jobs = self.data.get("jobs")
        names: dict[str, int] = {}
        for i, job in enumerate(jobs if isinstance(jobs, list) else []):
            if isinstance(job, dict):
                self._check_job(i, job, names)

    def _check_safe_name(self, path: PathTuple, name: Any, what: str) -> None:
        if not isinstance(name, str) or not name:
            return
        ok = _SAFE_NAME.fullmatch(name) and not name.endswith(".") and len(name) <= 100
        reserved = name.split(".")[0].upper() in _RESERVED_NAMES
        if not ok or reserved:
            message = f"{describe_value(name)} is not a safe name: use letters, digits, '.', '_' and '-'"
            if reserved:
                message = f"{describe_value(name)} is a reserved file name on Windows"
            suggestion = re.sub(r"[^\w.-]+", "-", name).strip(".-")[:100] or "my-name"
            suggestion += "-1" if reserved else ""
            self.add(path, message, f"{what}: e.g. '{suggestion}'")

    def _check_assets(self) -> None:
        assets = self.data.get("assets")
        for name, value in assets.items() if isinstance(assets, dict) else ():
            if isinstance(value, str) and value:
                loaded = _load_asset(name, value, self.base)
                if isinstance(loaded, str):
                    self.add(("assets", name), loaded)
                else:
                    self.assets[name] = loaded

    def _check_var_sources(self, prefix: PathTuple) -> None:
        node = self._get(prefix)
        for section in ("vars", "matrix"):
            names = node.get(section) if isinstance(node, dict) else None
            for name in names if isinstance(names, dict) else ():
                if name in BUILTIN_VARS:
                    self.add(
                        (*prefix, section, name),
                        f"'{name}' is a built-in variable",
                        "choose another name",
                        key=True,
                    )
        rows = node.get("rows") if isinstance(node, dict) else None
        if isinstance(rows, str) and rows:
            path = (*prefix, "rows")
            loaded = _load_rows(
                rows, self.base, self.positions.file, self.positions.at(path), format_path(path)
            )
            if isinstance(loaded, list):
                self.problems.extend(loaded)
            else:
                self.rows[(*prefix, "rows")] = loaded

    def _get(self, path: PathTuple) -> Any:
        node: Any = self.data
        for part in path:
            node = node[part]
        return node

    def _check_job(self, i: int, job: dict[str, Any], names: dict[str, int]) -> None:
        name = job.get("name")
        self._check_safe_name(("jobs", i, "name"), name, "job names appear in file names")
        if isinstance(name, str):
            if name in names:
                first = names[name]
                line = self.positions.at(("jobs", first, "name")).line
                self.add(
                    ("jobs", i, "name"), f"job name '{name}' is already used by jobs[{first}] (line {line})"
                )
            names.setdefault(name, i)
        self._check_var_sources(("jobs", i))
        if "model" not in job and not self.data.get("model"):
            self.add(
                ("jobs", i),
                "no model is set for this job",
                "set `model:` at the top level (for every job) or in this job",
            )


# ---------------------------------------------------------------- load


def load_manifest(path: str | os.PathLike[str], *, file: str | None = None) -> Manifest:
    """Read and check a manifest; raise ManifestError listing every problem found.

    `file` is how the manifest is named in problems (default: `path` as given).
    """
    manifest_path = Path(path)
    shown = file if file is not None else os.fspath(path)
    tree = _Tree(shown)
    data = tree.convert(_compose(_read_text(manifest_path, shown), shown), ())
    positions = Positions(shown, tree.values, tree.keys)
    problems = list(tree.problems)
    if not isinstance(data, dict):
        where = positions.at(())
        problems.append(
            Problem(shown, where.line, where.column, "", "the manifest must be a mapping (key: value)")
        )
        raise ManifestError(problems)
    reported = {p.field for p in tree.problems}
    problems.extend(p for p in _schema_problems(data, positions) if p.field not in reported)
    checker = _Checker(data, positions, manifest_path.parent)
    checker.run()
    problems.extend(checker.problems)
    if problems:
        raise ManifestError(_sorted(problems, shown))
    return _build(manifest_path, shown, data, positions, checker)


def _sorted(problems: list[Problem], manifest_file: str) -> list[Problem]:
    unique = list(dict.fromkeys(problems))
    unknown = sys.maxsize  # problems without a line go after the located ones of their file
    return sorted(
        unique,
        key=lambda p: (p.file != manifest_file, p.file, unknown if p.line is None else p.line, p.column or 0),
    )


def _build(path: Path, shown: str, data: dict[str, Any], positions: Positions, checker: _Checker) -> Manifest:
    jobs = tuple(_job_spec(i, job, positions, checker) for i, job in enumerate(data["jobs"]))
    upload = data.get("upload")
    return Manifest(
        path=path,
        file=shown,
        name=data["name"],
        model=data.get("model"),
        target_namespace=data.get("target_namespace"),
        defaults={k: v for k, v in data.get("defaults", {}).items() if k != "num_generations"},
        assets=checker.assets,
        vars=data.get("vars", {}),
        matrix={k: tuple(v) for k, v in data.get("matrix", {}).items()},
        rows=checker.rows.get(("rows",)),
        jobs=jobs,
        output_pattern=data.get("output", {}).get("pattern"),
        run=data.get("run", {}),
        upload={**UPLOAD_DEFAULTS, **upload} if upload is not None else None,
        positions=positions,
    )


def _job_spec(i: int, job: dict[str, Any], positions: Positions, checker: _Checker) -> JobSpec:
    return JobSpec(
        index=i,
        name=job["name"],
        model=job.get("model"),
        vars=job.get("vars", {}),
        matrix={k: tuple(v) for k, v in job.get("matrix", {}).items()},
        rows=checker.rows.get(("jobs", i, "rows")),
        repeat=job.get("repeat", 1),
        fields={k: v for k, v in job.items() if k not in JOB_SETTINGS},
        location=positions.at(("jobs", i)),
    )
