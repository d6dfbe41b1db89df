"""What report.html says once and how it slices the cards (`batchgen.results.report_view`), and what
each card carries for it: heading, tile shape, whether it can be picked, its price, and no money at
all in a report made without it."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from batchgen.results.report_html import ReportCard, ReportHeader, render_report
from batchgen.results.report_view import JOB_AXIS, MAX_FILTER_VALUES, Filter, view_of
from tests.test_report_html import HEADER, card, data_of

PRODUCTS = {"mug": "Warm mornings", "tote": "Carry spring", "lamp": "Light that stays"}


def campaign(**changes: Any) -> list[ReportCard]:
    """One job spec (hero): 3 products (each with its tagline) x 2 ratios, a constant brand."""
    cards = []
    for number, (product, tagline) in enumerate((p, t) for p, t in PRODUCTS.items() for _ in range(2)):
        ratio = ("16:9", "9:16")[number % 2]
        variables = {"brand": "Meadow", "product": product, "tagline": tagline, "aspect_ratio": ratio}
        title = f"hero · {product} · {ratio}"
        cards.append(card(number, name="hero", title=title, vars=variables, aspect_ratio=ratio, **changes))
    return cards


def test_constants_are_said_once_and_a_one_to_one_variable_folds_into_the_first() -> None:
    """brand and the job name are the same on every card: constants. tagline follows product one to
    one: no filter of its own, its values beside the product's. aspect_ratio: its own filter."""
    view = view_of(campaign())
    assert view.constants == ((JOB_AXIS, "hero"), ("brand", "Meadow"))
    assert view.filters == (
        Filter(
            "product",
            ("tagline",),
            (
                ("mug", "mug · Warm mornings", 2),
                ("tote", "tote · Carry spring", 2),
                ("lamp", "lamp · Light that stays", 2),
            ),
        ),
        Filter("aspect_ratio", (), (("16:9", "16:9", 3), ("9:16", "9:16", 3))),
    )


def test_a_variable_that_only_mostly_follows_another_keeps_its_own_filter() -> None:
    """Two products sharing a tagline: tagline no longer maps one to one, so it is a filter too."""
    cards = campaign()
    cards[4] = card(4, name="hero", vars={**cards[4].vars, "tagline": "Warm mornings"})
    cards[5] = card(5, name="hero", vars={**cards[5].vars, "tagline": "Warm mornings"})
    assert [f.name for f in view_of(cards).filters] == ["product", "tagline", "aspect_ratio"]


def test_the_job_name_is_a_filter_when_it_varies_and_takes_variables_that_follow_it() -> None:
    """Names that vary get the first filter; a variable one per name folds into it."""
    cards = [
        card(i, name=f"spot-{i % 3}", vars={"music": f"track {i % 3}", "take": str(i)}) for i in range(6)
    ]
    view = view_of(cards)
    assert view.constants == ()
    assert view.filters[0] == Filter(
        JOB_AXIS, ("music",), tuple((f"spot-{i}", f"spot-{i} · track {i}", 2) for i in range(3))
    )
    assert [f.name for f in view.filters] == [JOB_AXIS, "take"]


def test_a_variable_with_too_many_values_gets_no_filter() -> None:
    """Over MAX_FILTER_VALUES distinct values (a per-job line of copy): no select of 2,000 options."""
    cards = [
        card(i, name="c", vars={"line": f"line {i}", "p": f"p{i % 2}"}) for i in range(MAX_FILTER_VALUES + 1)
    ]
    assert [f.name for f in view_of(cards).filters] == ["p"]


def test_grouping_starts_with_the_manifests_choice_when_the_page_can_group_by_it() -> None:
    """group_by names a filter, or a variable folded into one (then that filter); a constant or an
    unknown one leaves the page ungrouped."""
    cards = campaign()
    assert view_of(cards, group_by="product").group_by == "product"
    assert view_of(cards, group_by="tagline").group_by == "product"
    assert view_of(cards, group_by="brand").group_by is None
    assert view_of(cards, group_by="nope").group_by is None
    assert view_of(cards).group_by is None


def test_headings_leave_out_the_job_name_every_card_shares_unless_the_manifest_wrote_titles() -> None:
    """`hero · mug · 16:9` under a header that says `job hero` is `mug · 16:9`; a manifest's own
    title is shown as written; names that differ stay."""
    assert view_of(campaign()).heading("hero · mug · 16:9") == "mug · 16:9"
    assert view_of(campaign(), own_titles=True).heading("hero · mug · 16:9") == "hero · mug · 16:9"
    assert view_of([card(0), card(1)]).heading("clip-0") == "clip-0"
    assert view_of([card(0, name="hero"), card(1, name="hero")]).heading("hero") == "hero"


def test_a_single_card_keeps_its_variables() -> None:
    """One card has nothing to share with others: no constants, its variables stay on it."""
    page = data_of(render_report(HEADER, [card(0, vars={"brand": "Meadow"})]))
    assert page["header"]["constants"] == [] and page["cards"][0]["vars"] == [["brand", "Meadow"]]


def test_the_page_data_carries_the_view() -> None:
    """The header lists constants and filters (labels with the folded variables, `job` for the name);
    each card carries only its varying variables and its heading."""
    page = data_of(render_report(HEADER, campaign()))
    header, first = page["header"], page["cards"][0]
    assert header["constants"] == [["name", "hero"], ["brand", "Meadow"]]
    assert [(f["name"], f["label"]) for f in header["filters"]] == [
        ("product", "product · tagline"),
        ("aspect_ratio", "aspect_ratio"),
    ]
    assert header["filters"][0]["options"][0] == ["mug", "mug · Warm mornings", 2]
    assert first["vars"] == [["product", "mug"], ["tagline", "Warm mornings"], ["aspect_ratio", "16:9"]]
    assert (first["title"], first["heading"]) == ("hero · mug · 16:9", "mug · 16:9")


def test_tiles_take_the_requested_aspect_ratio() -> None:
    """`16:9` -> [16, 9], `9:16` -> [9, 16]; none or nonsense: null (the file's own shape is used)."""
    cards = [
        card(i, aspect_ratio=a) for i, a in enumerate(["16:9", "9:16", "1:1", None, "wide", "0:1", "4:3:2"])
    ]
    ratios = [c["ratio"] for c in data_of(render_report(HEADER, cards))["cards"]]
    assert ratios == [[16, 9], [9, 16], [1, 1], None, None, None, None]


def test_only_a_result_on_disk_can_be_picked_and_failed_jobs_show_no_price() -> None:
    """done with a file: pickable, priced. failed, invalid, cancelled: not pickable, no price (the
    header's spend counts any charge). pending: its quote, not pickable. done without a file: not pickable."""
    states = [
        ("done", "videos/a.mp4"),
        ("failed", None),
        ("invalid", None),
        ("cancelled", None),
        ("pending", None),
    ]
    states.append(("done", None))
    cards = [card(i, state=s, video_path=p, cost_usd=Decimal("1.12")) for i, (s, p) in enumerate(states)]
    got = [(c["pickable"], c["cost"]) for c in data_of(render_report(HEADER, cards))["cards"]]
    assert got == [
        (True, "$1.12"),
        (False, None),
        (False, None),
        (False, None),
        (False, "$1.12"),
        (False, "$1.12"),
    ]


def test_a_report_without_money_has_no_amount_anywhere_in_the_file() -> None:
    """show_money off (a report for a client): no spend, budget, quote or billed cost in the page's
    data, so none in the file at all; the page says nothing about money."""
    header = ReportHeader(
        campaign="spring",
        generated_at="t",
        counts={"done": 1},
        spend_usd=Decimal("13.44"),
        spend_note="12 generations, as billed",
        budget_usd="20",
        show_money=False,
    )
    page = render_report(header, [card(0, cost_usd="1.12", billed_usd="1.12"), card(1, cost_usd="2.24")])
    data = data_of(page)
    assert data["header"]["money"] is False
    assert not {"spend", "spend_n", "spend_note", "budget", "budget_n"} & set(data["header"])
    assert not {"cost", "cost_n", "billed"} & set().union(*data["cards"])
    body = page.split('id="batchgen-data">')[1].split("</script>")[0]
    assert not re.search(r"\$|1\.12|2\.24|13\.44|budget|billed", body)
    assert data_of(render_report(HEADER, [card(0)]))["header"]["money"] is True
