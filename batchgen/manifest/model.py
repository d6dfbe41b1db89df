"""What a loaded manifest is: `Manifest`, `JobSpec`, assets, rows, positions, and the names they reserve."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgen.errors import Problem
from batchgen.target import IDENTIFIER

__all__ = [
    "ASSET_PLACEHOLDER_PREFIX",
    "BUILTIN_VARS",
    "DELIVER_DEFAULTS",
    "JOB_SETTINGS",
    "RESERVED_NAMES",
    "UPLOAD_DEFAULTS",
    "Asset",
    "JobSpec",
    "LocalAsset",
    "Location",
    "Manifest",
    "PathTuple",
    "Positions",
    "Rows",
    "UrlAsset",
    "is_identifier",
]

PathTuple = tuple[str | int, ...]

#: Variables batchgen defines for every job; manifests may not define them.
BUILTIN_VARS = ("name", "replica", "index", "model", "key")
#: Keys of a job spec that steer expansion; every other key is a request field.
JOB_SETTINGS = frozenset({"name", "model", "vars", "matrix", "rows", "repeat", "num_generations"})
#: What `upload:` keys default to (filled in when `upload:` is present).
UPLOAD_DEFAULTS: Mapping[str, Any] = {"branch": "main", "prefix": "batchgen-assets", "create": False}
#: What `deliver:` keys default to (filled in when `deliver:` is present).
DELIVER_DEFAULTS: Mapping[str, Any] = {"branch": "main", "path": "{name}", "create": False}
#: A local asset is written into a request as this prefix + its sha256 (hex) until upload.
ASSET_PLACEHOLDER_PREFIX = "batchgen-asset:sha256:"
#: File names Windows reserves for devices (also with an extension): never a run directory or a path.
RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)} | {f"LPT{i}" for i in range(1, 10)}
)


def is_identifier(name: str) -> bool:
    """Whether `name` can be used as a variable name (in `vars:`, a CSV header, a `{name}` template)."""
    return IDENTIFIER.fullmatch(name) is not None


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
        """What requests carry until the runner substitutes the uploaded URL (planning.resolve_request)."""
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
    """A loaded manifest, structurally valid in what planning reads. Plan it with
    `batchgen.planning.build_plan`, which raises `problems` (those load_manifest found that leave the
    rest plannable: job specs with problems of their own are not in `jobs`, unusable assets are not
    in `assets`) together with its own."""

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
    deliver: Mapping[str, Any] | None = None  # the Oxen repository results go to (defaults filled in)
    problems: tuple[Problem, ...] = ()  # found by load_manifest, raised by build_plan with the plan's
    refused_assets: frozenset[str] = frozenset()  # the assets those problems are about
    #: `report:` as written: `title` (the jobs' readable names' template), `group_by` (the report's grouping)
    report: Mapping[str, Any] | None = None
    #: `notify:` as written, always a list: each a `{command: [...]}` or `{webhook: URL}` (+ `timeout_s`)
    notify: tuple[Mapping[str, Any], ...] = ()
