"""Jobs named by what they are: `hero · mug · 9:16 · take 2`, the one rule every output uses.

A job's readable name is its name (the job spec's), then the values of the variables that tell the
jobs of that name apart, in the manifest's order of variables, then `take N` when its spec makes
more than one take (`repeat`). A variable is shown when it varies among the jobs of the name and
its value does not already follow from the variables shown before it: a CSV's `tagline` that goes
with its `product` adds length, not a distinction. Values are cleaned of control and formatting
characters and shortened to `MAX_VALUE_CHARS`. Two jobs of one plan never get the same name: a
clash gets as much of each job's key as tells them apart.

A manifest may write its own rule instead (`report: {title: "{product_name} · {aspect_ratio}"}`):
`TitleTemplate` reads it, and `template_names` names every job by it, with the same cleaning,
takes and clashes (its values shortened only after `MAX_TITLE_VALUE_CHARS`).

Pure, and a leaf: it imports only the leaf `target` (the template syntax), so the journal, the results
and the report can name a job without loading the planner. Machines keep using the key.
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from batchgen.target import IDENTIFIER, template_pieces

__all__ = [
    "MAX_TITLE_VALUE_CHARS",
    "MAX_VALUE_CHARS",
    "SEPARATOR",
    "TITLE_BUILTINS",
    "Nameable",
    "TitleTemplate",
    "Titled",
    "Varying",
    "readable_name",
    "readable_names",
    "shown_or_fallback",
    "template_names",
    "template_values",
    "varying",
]

SEPARATOR = " · "
#: A value longer than this many characters is shortened with "…" (results.* keep it whole).
MAX_VALUE_CHARS = 24
#: The same for a value a manifest's title template shows: it names few values, chosen to be read.
MAX_TITLE_VALUE_CHARS = 48
#: Key characters added to names that would otherwise clash: the first width that tells them apart.
_KEY_WIDTHS = (6, 12, 64)
_ABSENT = object()  # a job of the name that does not have the variable at all
#: What a title template may name besides variables and request fields: `take` is the replica + 1.
TITLE_BUILTINS = ("name", "replica", "index", "model", "key", "take")
_TAKE_FIELDS = frozenset({"replica", "take"})  # a title naming one of these says the take itself


class Nameable(Protocol):
    """What naming reads of a job: a planning.Job, or a job read back from plan.json."""

    @property
    def key(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def replica(self) -> int: ...
    @property
    def vars(self) -> Mapping[str, Any]: ...


class Titled(Nameable, Protocol):
    """What a title template reads of a job besides its name: its position, model and request."""

    @property
    def index(self) -> int: ...
    @property
    def model(self) -> str: ...
    @property
    def request(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Varying:
    """What tells a plan's jobs apart, per job name: the variables to show, in manifest order, and
    whether its jobs are takes of one another (the spec's `repeat` is over 1)."""

    shown: Mapping[str, tuple[str, ...]]
    repeated: frozenset[str]


def varying(jobs: Iterable[Nameable]) -> Varying:
    """Which variables tell the jobs of each name apart (computed once per plan)."""
    by_name: dict[str, list[Nameable]] = {}
    for job in jobs:
        by_name.setdefault(job.name, []).append(job)
    shown = {name: _telling(group) for name, group in by_name.items()}
    repeated = frozenset(name for name, group in by_name.items() if any(job.replica for job in group))
    return Varying(shown, repeated)


def _telling(group: Sequence[Nameable]) -> tuple[str, ...]:
    """The variables, in order of first appearance, each of which splits some set of the group's jobs
    that agree on every variable chosen before it."""
    order = dict.fromkeys(name for job in group for name in job.vars)
    chosen: list[str] = []
    seen_so_far: list[tuple[Any, ...]] = [() for _ in group]  # each job's values of the chosen ones
    for variable in order:
        first: dict[tuple[Any, ...], Any] = {}
        values = [_text(job.vars[variable]) if variable in job.vars else _ABSENT for job in group]
        if any(
            first.setdefault(seen, value) != value for seen, value in zip(seen_so_far, values, strict=True)
        ):
            chosen.append(variable)
            seen_so_far = [(*seen, value) for seen, value in zip(seen_so_far, values, strict=True)]
    return tuple(chosen)


def readable_name(job: Nameable, varying: Varying) -> str:
    """`hero · mug · 9:16 · take 2`: the job's name, its values of the variables that tell the jobs
    of its name apart, and its take when its spec makes more than one. Not unique by itself (two
    values may shorten alike): `readable_names` makes a plan's names unique."""
    parts = [_clean(job.name)]
    for variable in varying.shown.get(job.name, ()):
        if variable in job.vars:
            parts.append(_shorten(_clean(_text(job.vars[variable]))) or "(empty)")
    if job.name in varying.repeated:
        parts.append(f"take {job.replica + 1}")
    return SEPARATOR.join(parts)


def readable_names(jobs: Sequence[Nameable]) -> dict[str, str]:
    """Every job's readable name, by key, unique within `jobs` (one plan): names that would clash
    get the first 6 characters of the key added (more, if those still clash)."""
    rule = varying(jobs)
    return _unique({job.key: readable_name(job, rule) for job in jobs})


def _unique(base: Mapping[str, str]) -> dict[str, str]:
    """`base` (names by key) with the key's first characters added to every name that clashes."""
    names = dict(base)
    for width in _KEY_WIDTHS:
        counts = Counter(names.values())
        if len(counts) == len(names):
            break
        clashing = [key for key, name in names.items() if counts[name] > 1]
        for key in clashing:
            names[key] = f"{base[key]}{SEPARATOR}{key[:width]}"
    return names


@dataclass(frozen=True, slots=True)
class TitleTemplate:
    """A manifest's `report.title`: text with `{field}`s (a variable, a request field or one of
    `TITLE_BUILTINS`), `{{` and `}}` for braces. `parse` raises ValueError saying what is wrong."""

    text: str
    parts: tuple[tuple[bool, str], ...]  # (is a field, its name or literal text), in order

    @classmethod
    def parse(cls, text: str) -> TitleTemplate:
        parts: list[tuple[bool, str]] = []
        for piece in template_pieces(text):
            if isinstance(piece, str):
                parts.append((False, piece))
            elif piece.group(1) is None:
                token = piece.group(0)
                raise ValueError(f"a lone {token!r} (write {token * 2!r} for the character itself)")
            elif not IDENTIFIER.fullmatch(piece.group(1)):
                raise ValueError(
                    f"{piece.group(0)!r} is not a field: write {{name}} with a variable, a request field or "
                    f"one of {', '.join(TITLE_BUILTINS)}"
                )
            else:
                parts.append((True, piece.group(1)))
        return cls(text, tuple(parts))

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields it names, each once, in order."""
        return tuple(dict.fromkeys(name for is_field, name in self.parts if is_field))

    def render(self, values: Mapping[str, Any]) -> str:
        """The title for one job's `values` (`template_values`): each value cleaned as in readable
        names and shortened to MAX_TITLE_VALUE_CHARS; a field the job lacks (a list, say) shows as "-"."""
        text = "".join(
            (_shorten(_clean(_text(values[name])), MAX_TITLE_VALUE_CHARS) if name in values else "-")
            if is_field
            else name
            for is_field, name in self.parts
        )
        return _clean(text) or "(empty)"


def template_values(job: Titled) -> dict[str, Any]:
    """What a title template can name for `job`: `take` < its request's top-level single values <
    its variables < the built-ins (as in output patterns: a variable wins over a request field)."""
    values: dict[str, Any] = {"take": job.replica + 1}
    values.update((k, v) for k, v in job.request.items() if not isinstance(v, list | dict))
    values.update(job.vars)
    values.update(name=job.name, replica=job.replica, index=job.index, model=job.model, key=job.key[:12])
    return values


def template_names(jobs: Sequence[Titled], template: TitleTemplate) -> dict[str, str]:
    """Every job's name by the manifest's `template`, by key, unique within `jobs` as
    `readable_names` makes them; a job whose spec makes several takes gets `take N` added unless
    the template names `{take}` or `{replica}` itself."""
    repeated = varying(jobs).repeated if not _TAKE_FIELDS & set(template.fields) else frozenset()
    base = {}
    for job in jobs:
        title = template.render(template_values(job))
        base[job.key] = f"{title}{SEPARATOR}take {job.replica + 1}" if job.name in repeated else title
    return _unique(base)


def shown_or_fallback(title: str | None, name: str, key: str) -> str:
    """`title` when there is one; else, for a job journaled before batchgen kept readable names, its
    name and key prefix."""
    return title or f"{_clean(name)}{SEPARATOR}{key[: _KEY_WIDTHS[0]]}"


def _text(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return str(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _clean(text: str) -> str:
    """One line of visible text: whitespace runs become one space; control and formatting characters
    (bidi overrides, zero-width ones) go, so a name cannot break a log line or reorder a terminal's."""
    if text.isprintable() and "  " not in text and text.strip() == text:  # the common case, fast
        return text
    kept = []
    for char in text:
        if char.isspace():
            kept.append(" ")
        elif not unicodedata.category(char).startswith("C"):
            kept.append(char)
    return " ".join("".join(kept).split())


def _shorten(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    if len(text) <= limit:
        return text
    cut = limit - 1
    while cut > 1 and unicodedata.combining(text[cut]):  # never part a letter from its accent
        cut -= 1
    return text[:cut].rstrip() + "…"
