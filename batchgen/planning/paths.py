"""Output paths (pure): the pattern, sanitised values, safety checks, collisions.

A path here is always a relative POSIX string under the run's `videos/` directory; the file system
side (`checked_path`, the one path check, built on `check_relative`; `.part` names) is `rundir.layout`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, TypeVar

from batchgen.manifest.model import RESERVED_NAMES
from batchgen.planning.templates import AssetRef, TemplateSyntaxError, Var, parse_template

__all__ = [
    "DEFAULT_PATTERN",
    "EXTENSIONS",
    "KEY_CHARS",
    "MAX_SEGMENT_BYTES",
    "MAX_VALUE_CHARS",
    "OutputPattern",
    "PathRegistry",
    "PatternError",
    "check_relative",
    "fold",
    "sanitise",
    "value_text",
]

#: Used when the manifest has no `output.pattern`; the key makes it collision-free by construction.
DEFAULT_PATTERN = "{name}/{name}-{key}"
#: How many hex digits of the job key `{key}` gives.
KEY_CHARS = 12
#: The extension appended (or required) for each media type.
EXTENSIONS: Mapping[str, str] = {"video": ".mp4", "image": ".png"}
#: A substituted value is cut to this many characters.
MAX_VALUE_CHARS = 80
#: A path segment may be at most this many UTF-8 bytes (255 is the usual limit; room for ".part").
MAX_SEGMENT_BYTES = 200

_RESERVED_PREFIXES = frozenset(name[:3] for name in RESERVED_NAMES)
_FORBIDDEN = re.compile(r'[\\:*?"<>|\x00-\x1f\x7f]')
_RATIO_COLON = re.compile(r"(?<=\d):(?=\d)")
_UNSAFE_IN_VALUE = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f\s]+')
_UNDERSCORES = re.compile(r"_{2,}")
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,8}$")


class PatternError(ValueError):
    """`output.pattern` itself is invalid (syntax, asset references, unsafe literal text)."""


# ---------------------------------------------------------------- values and segments


def value_text(value: Any) -> str:
    """A value as text: booleans and null as YAML writes them (`true`, `null`), others by `str`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def sanitise(value: Any) -> str:
    """A value as one safe path segment.

    Leading/trailing whitespace and dots are dropped; `16:9` -> `16x9` (a colon between digits
    becomes `x`); any other `/ \\ : * ? " < > |`, control character or whitespace run becomes one `_`;
    the result is cut to MAX_VALUE_CHARS; an empty result is `_`; a Windows device name (CON, NUL,
    COM1, LPT1, ..., also with an extension) gets a `_` after it: `CON` -> `CON_`, `lpt1.txt` -> `lpt1_.txt`.
    """
    return _sanitise_text(value if type(value) is str else value_text(value))


@lru_cache(maxsize=65536)
def _sanitise_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text).strip().strip(". ")
    text = _RATIO_COLON.sub("x", text)
    text = _UNDERSCORES.sub("_", _UNSAFE_IN_VALUE.sub("_", text))
    text = text.strip(". ")[:MAX_VALUE_CHARS].rstrip(". ")
    if not text:
        return "_"
    stem, dot, rest = text.partition(".")
    if stem.upper() in RESERVED_NAMES:
        return f"{stem}_{dot}{rest}"
    return text


def _segment_problem(segment: str) -> str | None:
    if not segment:
        return "has an empty segment"
    if segment in (".", ".."):
        return f"has a '{segment}' segment"
    if segment[-1] in ". ":
        return f"has a segment ending in {segment[-1]!r} ({segment!r})"
    if segment[:3].upper() in _RESERVED_PREFIXES and segment.split(".")[0].upper() in RESERVED_NAMES:
        return f"uses the reserved Windows name {segment!r}"
    if len(segment) * 4 > MAX_SEGMENT_BYTES and len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        return f"has a segment longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def check_relative(path: str) -> str | None:
    """Why `path` is not a safe relative POSIX path (or None when it is)."""
    if not path:
        return "is empty"
    if path[0] in "/\\":
        return "is absolute"
    bad = _FORBIDDEN.search(path)
    if bad:
        return f"contains {bad.group(0)!r}, which some file systems do not allow"
    return next(filter(None, map(_segment_problem, path.split("/"))), None)


def fold(path: str) -> str:
    """The form two paths are compared in (macOS and Windows ignore case; macOS normalises Unicode)."""
    if path.isascii():
        return path.lower()
    return unicodedata.normalize("NFC", path).casefold()


# ---------------------------------------------------------------- the pattern


@dataclass(frozen=True, slots=True)
class OutputPattern:
    """A compiled `output.pattern`: literal text and field names, plus its written extension."""

    source: str
    parts: tuple[str | Var, ...]
    extension: str | None  # the extension written at the end of the pattern, if any
    format: str  # the pattern as a str.format template (literal braces doubled)

    @classmethod
    def compile(cls, pattern: str) -> OutputPattern:
        """Parse and check the literal parts; raise PatternError saying what is wrong."""
        try:
            template = parse_template(pattern)
        except TemplateSyntaxError as exc:
            raise PatternError(exc.message) from None
        parts: list[str | Var] = []
        for part in template.parts:
            if isinstance(part, AssetRef):
                raise PatternError("asset references cannot be used in file names")
            parts.append(part)
        last = parts[-1] if parts else ""
        found = _EXTENSION.search(last) if isinstance(last, str) else None
        text = "".join(
            p.replace("{", "{{").replace("}", "}}") if isinstance(p, str) else f"{{{p.name}}}" for p in parts
        )
        compiled = cls(pattern, tuple(parts), found.group(0) if found else None, text)
        problem = check_relative(compiled.render(dict.fromkeys(compiled.names(), "x"), ".mp4"))
        if problem in ("is absolute", "has a '..' segment"):
            raise PatternError(f"{problem}: file names must stay inside the run's videos/ directory")
        if problem:
            raise PatternError(problem)
        return compiled

    def names(self) -> tuple[str, ...]:
        """The field names the pattern uses, in order, without repeats."""
        return tuple(dict.fromkeys(p.name for p in self.parts if isinstance(p, Var)))

    def render(self, values: Mapping[str, Any], extension: str) -> str:
        """The relative path for one job: sanitised values, `extension` appended if none is written."""
        return self.render_safe({name: sanitise(value) for name, value in values.items()}, extension)

    def render_safe(self, safe: Mapping[str, str], extension: str) -> str:
        """`render` for values that are already safe segments (sanitised, or a hex key)."""
        text = self.format.format_map(safe)
        return text if self.extension is not None else text + extension


# ---------------------------------------------------------------- collisions

Owner = TypeVar("Owner")


class PathRegistry(Generic[Owner]):
    """Claims output paths; reports the earlier owner when two jobs would write the same file.

    Paths are compared folded (case and Unicode form) and without their extension, so two jobs that
    differ only in case, or whose sidecars (`<stem>.json`) would clash, collide too; a file may not
    also be a directory of another job's path.
    """

    def __init__(self) -> None:
        self._stems: dict[str, Owner] = {}
        self._files: dict[str, Owner] = {}
        self._dirs: dict[str, Owner] = {}

    def claim(self, path: str, owner: Owner) -> Owner | None:
        """Record `path` for `owner`; return the owner it collides with (and record nothing), or None."""
        folded = fold(path)
        slash = folded.rfind("/")
        dot = folded.rfind(".")
        stem = folded[:dot] if dot > slash + 1 else folded
        other = self._stems.get(stem)
        if other is None:
            other = self._dirs.get(folded)
        if other is None and slash > 0 and folded[:slash] not in self._dirs:
            other = self._claim_parents(folded[:slash], owner)
        if other is not None:
            return other
        self._stems[stem] = owner
        self._files[folded] = owner
        return None

    def _claim_parents(self, parent: str, owner: Owner) -> Owner | None:
        # Once a directory is recorded, every prefix of it was checked against the files then, and
        # a later file equal to a recorded directory is refused above; so known parents are skipped.
        parts = parent.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for prefix in prefixes:
            other = self._files.get(prefix)
            if other is not None:
                return other
        for prefix in prefixes:
            self._dirs.setdefault(prefix, owner)
        return None
