"""The rule that names a job for a person (`batchgen.naming`): a table of plans and the names they get."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from batchgen.naming import (
    MAX_TITLE_VALUE_CHARS,
    MAX_VALUE_CHARS,
    TitleTemplate,
    readable_name,
    readable_names,
    shown_or_fallback,
    template_names,
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
    assert shown_or_fallback(None, "hero", key) == "hero · e51ef4"
    assert shown_or_fallback("hero · mug", "hero", key) == "hero · mug"


# ---------------------------------------------------------------- a manifest's own title (report.title)


@dataclass(frozen=True)
class T:
    """A job as a title template reads it: a planning.Job's name, variables, request and built-ins."""

    key: str
    name: str
    replica: int = 0
    vars: Mapping[str, Any] = field(default_factory=dict)
    index: int = 0
    model: str = "kling"
    request: Mapping[str, Any] = field(default_factory=dict)


def titled(template: str, plan: list[T]) -> list[str]:
    got = template_names(plan, TitleTemplate.parse(template))
    return [got[job.key] for job in plan]


def campaign_jobs() -> list[T]:
    """hero: 2 products x 2 ratios x 2 takes; story: one 9:16 job per product (no matrix, no takes)."""
    specs = [
        ("hero", replica, {"product": p, "brand": "Meadow"}, {"aspect_ratio": a})
        for p in ("mug", "tote")
        for a in ("16:9", "9:16")
        for replica in (0, 1)
    ]
    specs += [("story", 0, {"product": p}, {"aspect_ratio": "9:16"}) for p in ("mug", "tote")]
    return [
        T(f"{i:02d}" + "ab" * 31, name, replica, variables, i, "kling", request)
        for i, (name, replica, variables, request) in enumerate(specs)
    ]


def test_a_title_template_names_each_job_by_its_variables_and_request_fields() -> None:
    """`{product} · {aspect_ratio}` reads a variable and a request field; a spec with several takes
    gets `take N`, one without does not; two jobs it leaves alike get the key's first characters."""
    got = titled("{product} · {aspect_ratio}", campaign_jobs())
    assert got[:4] == [
        "mug · 16:9 · take 1",
        "mug · 16:9 · take 2",
        "mug · 9:16 · take 1",
        "mug · 9:16 · take 2",
    ]
    assert got[8:] == ["mug · 9:16", "tote · 9:16"]
    assert len(set(got)) == len(got)


def test_a_title_that_names_the_take_itself_gets_no_second_one() -> None:
    """`{take}` (replica + 1) or `{replica}` in the template: no ` · take N` is added."""
    plan = campaign_jobs()[:2]
    assert titled("{product} take {take}", plan) == ["mug take 1", "mug take 2"]
    assert titled("{product} #{replica}", plan) == ["mug #0", "mug #1"]


def test_a_title_template_reads_built_ins_braces_and_cleans_values() -> None:
    """Built-ins (name, index, model, key as 12 characters), `{{`/`}}` as braces, a long value
    shortened (later than in the default names: a title names few values), control characters
    taken out, a list field shown as "-"."""
    job = T("f" * 64, "hero", 0, {"line": "a\u202eb\n" + "x" * 80}, 7, "kling", {"input_image": ["u"]})
    assert titled("{{{name}}} {index} {model} {key}", [job]) == ["{hero} 7 kling " + "f" * 12]
    assert titled("{line}", [job]) == ["ab " + "x" * (MAX_TITLE_VALUE_CHARS - 4) + "…"]
    assert titled("{input_image}", [job]) == ["-"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{product", "a lone '{' (write '{{' for the character itself)"),
        ("product}", "a lone '}' (write '}}' for the character itself)"),
        ("{a.b}", "'{a.b}' is not a field"),
        ("{}", "'{}' is not a field"),
        ("{asset:mug}", "'{asset:mug}' is not a field"),
    ],
)
def test_a_title_template_with_bad_braces_is_refused_saying_why(template: str, message: str) -> None:
    """Syntax errors are ValueErrors that say what is wrong (the manifest check locates them)."""
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        TitleTemplate.parse(template)


def test_a_title_template_lists_its_fields_once_in_order() -> None:
    """`fields` is what the manifest check compares against each job spec's variables."""
    assert TitleTemplate.parse("{b} {a} {{x}} {b}").fields == ("b", "a")
