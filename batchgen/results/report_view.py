"""How report.html presents a run's cards: what it says once, how it lets a person slice them.

Pure, from the cards alone (`view_of`):

- **constants**: a variable with one value on every card (a `brand`), and the job name when every
  card has the same one, are said once, in the header, and left off the cards (of two or more);
- **filters**: one for the job name and one per other variable with 2 to `MAX_FILTER_VALUES`
  values; a variable whose values map one to one to an earlier one's (a CSV's `tagline`, one per
  `product`) is folded into that filter, its values beside the first's in each option;
- **grouping**: by any of those filters' variables, the manifest's `report.group_by` first;
- **headings**: the job's readable name, without the job name every card shares (unless the
  manifest wrote its own title, which is shown as written).

Each value is compared as the card shows it (`shown_value`), which is what the page's script reads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from batchgen.naming import SEPARATOR

__all__ = [
    "JOB_AXIS",
    "MAX_FILTER_VALUES",
    "MAX_SHOWN_CHARS",
    "Filter",
    "View",
    "display_value",
    "shown_value",
    "view_of",
]

#: A variable with more distinct values than this gets no filter (a per-job tagline, say).
MAX_FILTER_VALUES = 200
#: A variable's value longer than this is shortened on the cards (the whole one is in the results).
MAX_SHOWN_CHARS = 200
#: The filter (and grouping) by job name is called after the built-in variable.
JOB_AXIS = "name"
_ABSENT = None  # a card without the variable


class Viewed(Protocol):
    """What the view reads of a card (a report_html.ReportCard)."""

    @property
    def name(self) -> str: ...
    @property
    def vars(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Filter:
    """One filter: its variable (`JOB_AXIS` for the job name), those folded into it, and its options
    (value, label with the folded values, number of cards), in order of first appearance."""

    name: str
    folded: tuple[str, ...]
    options: tuple[tuple[str, str, int], ...]


@dataclass(frozen=True, slots=True)
class View:
    """What the page says once and how it slices the cards (see the module docstring)."""

    constants: tuple[tuple[str, Any], ...]  # (variable or JOB_AXIS, value), for the header
    filters: tuple[Filter, ...]
    group_by: str | None  # the filter the page groups by at first
    shared_name: str | None  # the job name every card shares, left out of headings

    def heading(self, title: str) -> str:
        """The card's heading: its readable name, without the name every card shares."""
        if self.shared_name and title.startswith(self.shared_name + SEPARATOR):
            return title[len(self.shared_name) + len(SEPARATOR) :]
        return title


def display_value(value: Any) -> str:
    """A variable's value as text: booleans as in the manifest, whole floats without `.0`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return str(int(value)) if abs(value) < 1e15 else str(value)
    if isinstance(value, str | int | float | Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def shown_value(value: Any) -> tuple[str, str | None]:
    """(the text a card shows, a tooltip when it is shortened): a 100 KB value on every card would
    bury the page (results.csv keeps it whole)."""
    text = display_value(value)
    if len(text) <= MAX_SHOWN_CHARS:
        return text, None
    return text[:MAX_SHOWN_CHARS] + "…", f"{len(text):,} characters, shortened here; results.csv has it whole"


def view_of(cards: Sequence[Viewed], *, group_by: str | None = None, own_titles: bool = False) -> View:
    """The view of `cards`: `group_by` is the manifest's `report.group_by`; `own_titles` says the
    manifest wrote the titles (`report.title`), so headings keep them whole."""
    axes = _axes(cards)
    alike = {name for name, values in axes.items() if len(cards) > 1 and _is_constant(values)}
    constants = [(name, _first_value(cards, name)) for name in axes if name in alike]
    varying = {name: values for name, values in axes.items() if name not in alike}
    primaries: dict[str, list[str]] = {}  # filter -> the variables folded into it
    for name, values in varying.items():
        into = next((p for p in primaries if _one_to_one(varying[p], values)), None)
        primaries.setdefault(name, []) if into is None else primaries[into].append(name)
    filters = tuple(
        _filter(name, tuple(folded), varying)
        for name, folded in primaries.items()
        if _filterable(varying[name])
    )
    chosen = next((f.name for f in filters if group_by in (f.name, *f.folded)), None)
    shared = next((value for name, value in constants if name == JOB_AXIS), None)
    return View(tuple(constants), filters, chosen, None if own_titles else shared)


def _axes(cards: Sequence[Viewed]) -> dict[str, list[str | None]]:
    """Each card's shown value of the job name and of every variable, in order of first appearance."""
    names = dict.fromkeys(name for card in cards for name in card.vars)
    axes: dict[str, list[str | None]] = {JOB_AXIS: [card.name for card in cards]} if cards else {}
    for name in names:
        axes[name] = [shown_value(card.vars[name])[0] if name in card.vars else _ABSENT for card in cards]
    return axes


def _first_value(cards: Sequence[Viewed], name: str) -> Any:
    return cards[0].name if name == JOB_AXIS else cards[0].vars[name]


def _is_constant(values: list[str | None]) -> bool:
    return _ABSENT not in values and len(set(values)) == 1


def _one_to_one(first: list[str | None], second: list[str | None]) -> bool:
    """Whether each value of `first` goes with one value of `second` and the other way round."""
    forward: dict[Hashable, Hashable] = {}
    backward: dict[Hashable, Hashable] = {}
    for a, b in zip(first, second, strict=True):
        if forward.setdefault(a, b) != b or backward.setdefault(b, a) != a:
            return False
    return True


def _filterable(values: list[str | None]) -> bool:
    return 2 <= len(set(values) - {_ABSENT}) <= MAX_FILTER_VALUES


def _filter(name: str, folded: tuple[str, ...], axes: Mapping[str, list[str | None]]) -> Filter:
    counts: dict[str, int] = {}
    labels: dict[str, str] = {}
    for position, value in enumerate(axes[name]):
        if value is _ABSENT:
            continue
        counts[value] = counts.get(value, 0) + 1
        if value not in labels:
            beside = [axes[other][position] for other in folded]
            labels[value] = SEPARATOR.join([value, *(b for b in beside if b is not _ABSENT)])
    return Filter(name, folded, tuple((value, labels[value], n) for value, n in counts.items()))
