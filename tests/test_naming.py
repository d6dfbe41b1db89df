"""The rule that names a job for a person (`batchgen.naming`): a table of plans and the names they get."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from batchgen.naming import (
    MAX_VALUE_CHARS,
    fallback_name,
    readable_name,
    readable_names,
    shown_or_fallback,
    varying,
)


@dataclass(frozen=True)
class J:
    key: str
    name: str
    replica: int = 0
    vars: Mapping[str, Any] = field(default_factory=dict)


def jobs(*specs: tuple[str, int, dict[str, Any]]) -> list[J]:
    return [J(f"{i:02d}" + "ab" * 31, name, replica, v) for i, (name, replica, v) in enumerate(specs)]


def names(plan: list[J]) -> list[str]:
    got = readable_names(plan)
    return [got[job.key] for job in plan]


CAMPAIGN = [  # a CSV (product, tagline, scene) x a matrix axis x repeat 2, and a constant brand
    ("hero", replica, {"brand": "Meadow", "product": p, "tagline": t, "scene": s, "aspect_ratio": a})
    for p, t, s in (("mug", "Warm mornings", "a desk"), ("lamp", "Light that stays", "a shelf"))
    for a in ("16:9", "9:16")
    for replica in (0, 1)
]

TABLE: list[tuple[str, list[tuple[str, int, dict[str, Any]]], list[str]]] = [
    (
        "the issue's example: constant brand left out, tagline and scene follow from the product",
        CAMPAIGN,
        [
            f"hero · {p} · {a} · take {r + 1}"
            for p in ("mug", "lamp")
            for a in ("16:9", "9:16")
            for r in (0, 1)
        ],
    ),
    (
        "one job: its name alone",
        [("teaser", 0, {"brand": "Meadow"})],
        ["teaser"],
    ),
    (
        "replicas only: takes numbered from 1",
        [("loop", 0, {}), ("loop", 1, {}), ("loop", 2, {})],
        ["loop · take 1", "loop · take 2", "loop · take 3"],
    ),
    (
        "variables are judged per job name: a spec without a matrix shows none",
        [
            ("a", 0, {"color": "red"}),
            ("a", 0, {"color": "blue"}),
            ("b", 0, {"color": "red"}),
        ],
        ["a · red", "a · blue", "b"],
    ),
    (
        "manifest order of the variables, not alphabetical",
        [
            ("x", 0, {"zeta": "1", "alpha": "p"}),
            ("x", 0, {"zeta": "2", "alpha": "q"}),
            ("x", 0, {"zeta": "1", "alpha": "q"}),
        ],
        ["x · 1 · p", "x · 2 · q", "x · 1 · q"],
    ),
    (
        "numbers, booleans, null and lists as a manifest writes them",
        [
            ("n", 0, {"d": 5, "f": 2.0, "b": True, "z": None, "l": [1, "a"]}),
            ("n", 0, {"d": 10, "f": 2.5, "b": False, "z": 1, "l": []}),
        ],
        ["n · 5", "n · 10"],  # d tells them apart; the others follow from it
    ),
    (
        "non-ASCII values whole, accents kept",
        [("héro", 0, {"city": "Zürich"}), ("héro", 0, {"city": "東京"}), ("héro", 0, {"city": "São Paulo"})],
        ["héro · Zürich", "héro · 東京", "héro · São Paulo"],
    ),
    (
        "newlines, tabs, bidi overrides and zero-width characters cannot break or reorder a line",
        [("m", 0, {"t": "two\nlines\there"}), ("m", 0, {"t": "a\u202egnp.exe\u200b"})],
        ["m · two lines here", "m · agnp.exe"],
    ),
    (
        "an empty value still holds its place",
        [("e", 0, {"t": ""}), ("e", 0, {"t": "x"})],
        ["e · (empty)", "e · x"],
    ),
]


@pytest.mark.parametrize(("plan", "expected"), [(p, e) for _, p, e in TABLE], ids=[t[0] for t in TABLE])
def test_readable_names_of_a_plan(plan: list[tuple[str, int, dict[str, Any]]], expected: list[str]) -> None:
    """Each plan of the table gets exactly these names, in plan order."""
    assert names(jobs(*plan)) == expected


def test_a_long_value_is_shortened_with_an_ellipsis_and_never_splits_an_accent() -> None:
    """Values over MAX_VALUE_CHARS end in "…" at that length; a combining accent stays on its letter."""
    long = "A slow push-in across the marble table at golden hour"
    accented = "e" * (MAX_VALUE_CHARS - 2) + "e\u0301" + "tail"  # the cut would fall inside "é"
    plan = jobs(("p", 0, {"prompt": long}), ("p", 0, {"prompt": accented}))
    first, second = names(plan)
    shown = first.split(" · ")[1]
    assert shown.endswith("…") and len(shown) <= MAX_VALUE_CHARS and long.startswith(shown[:-1])
    assert second.split(" · ")[1] == "e" * (MAX_VALUE_CHARS - 2) + "…"


def test_names_that_would_clash_get_the_key_prefix_and_never_repeat() -> None:
    """Two values alike in their first MAX_VALUE_CHARS characters shorten alike: both names get the
    key's first 6 characters; the others stay as they are."""
    same_start = "x" * MAX_VALUE_CHARS
    plan = jobs(("c", 0, {"t": same_start + "1"}), ("c", 0, {"t": same_start + "2"}), ("c", 0, {"t": "y"}))
    got = names(plan)
    assert got[0] == f"c · {'x' * (MAX_VALUE_CHARS - 1)}… · {plan[0].key[:6]}"
    assert got[1] == f"c · {'x' * (MAX_VALUE_CHARS - 1)}… · {plan[1].key[:6]}"
    assert got[2] == "c · y"
    assert len(set(got)) == 3


def test_keys_alike_in_their_first_6_characters_get_more_of_the_key() -> None:
    """Clashing names whose keys share 6 characters take 12; names never repeat whatever the keys."""
    plan = [J("abcdef" + "1" * 58, "k"), J("abcdef" + "2" * 58, "k")]
    got = readable_names(plan)
    assert got == {plan[0].key: "k · abcdef111111", plan[1].key: "k · abcdef222222"}


def test_a_suffixed_name_that_meets_a_natural_one_is_told_apart_too() -> None:
    """A job whose own value is what another's key prefix would add still ends up with a unique name."""
    twin = [J("0f0f0f" + "a" * 58, "k", vars={"v": "q"}), J("0f0f0f" + "b" * 58, "k", vars={"v": "q"})]
    natural = J("c" * 64, "k", vars={"v": "q · 0f0f0f"})
    got = readable_names([*twin, natural])
    assert len(set(got.values())) == 3


def test_varying_is_computed_once_per_plan_and_names_read_it() -> None:
    """`varying` says which variables each name shows and which names repeat; `readable_name` reads it."""
    plan = jobs(*CAMPAIGN)
    rule = varying(plan)
    assert rule.shown == {"hero": ("product", "aspect_ratio")}
    assert rule.repeated == frozenset({"hero"})
    assert readable_name(plan[3], rule) == "hero · mug · 9:16 · take 2"


def test_journals_from_before_readable_names_fall_back_to_name_and_key_prefix() -> None:
    """A job journaled without a readable name is shown by its name and the first 6 key characters."""
    key = "e51ef4b442dd" + "0" * 52
    assert fallback_name("hero", key) == "hero · e51ef4"
    assert shown_or_fallback(None, "hero", key) == "hero · e51ef4"
    assert shown_or_fallback("hero · mug", "hero", key) == "hero · mug"
