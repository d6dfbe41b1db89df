"""report.html: a self-contained contact sheet of a run, to review a batch the morning after.

`render_report(header, cards)` is pure: data in, one HTML string out (no CDN, no server; it opens
from file:// and links the results relatively); `write_report` writes it atomically, a card at a
time. The data comes from `report_data` (a run's end, or a run directory's plan.json and results);
what the page says once and how it slices the cards, from `report_view`. `ReportHeader.show_money`
off leaves every amount out of the file (a report for a client), not just out of sight.

Every string from the manifest or the provider is untrusted. It travels as JSON inside a
`<script type="application/json">` block, with `<`, `>`, `&`, U+2028 and U+2029 escaped, and the
page's own script puts it into the DOM only through textContent and attribute setters, never as
markup. A Content-Security-Policy admits only the page's own script and style (by hash).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from batchgen.naming import shown_or_fallback
from batchgen.registry.pricing import format_usd
from batchgen.results.report_view import JOB_AXIS, View, display_value, shown_value, view_of
from batchgen.rundir.layout import atomic_writer
from batchgen.states import BILLED, NO_RESULT

__all__ = [
    "REPORT_NAME",
    "ReportCard",
    "ReportHeader",
    "amount_usd",
    "embed_json",
    "media_href",
    "render_report",
    "write_report",
]

REPORT_NAME = "report.html"
FORMAT = "batchgen-report/1"
VarValue = str | int | float
Money = str | Decimal

#: States whose generation exists or may exist at the provider: the quoted spend of a results file from
#: before the `spent_usd` column counts them.
CHARGED_STATES = frozenset(str(s) for s in BILLED)
_STATE_ORDER = (
    "failed",
    "invalid",
    "unverified",
    "cancelled",
    "pending",
    "submitting",
    "queued",
    "processing",
    "succeeded",
    "downloading",
    "done",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportHeader:
    """What the top of the report says about the whole run."""

    campaign: str  # the manifest's name (also keys the picks kept in the browser's localStorage)
    generated_at: str  # ISO-8601
    counts: Mapping[str, int]  # jobs per state
    spend_usd: Money | None  # what the run directory has spent (`batchgen.journal.spend`); None when unknown
    spend_note: str | None = None  # what that counts, in words ("13 generations, as billed; …")
    budget_usd: Money | None = None
    sandbox: bool = False
    api_origin: str | None = None
    ran_from: str | None = None  # ISO-8601: the first submission
    ran_to: str | None = None  # ISO-8601: the last completion or download
    #: False: no amount (spend, budget, quotes, billed costs) is written into the page at all
    show_money: bool = True
    title_template: str | None = None  # the manifest's report.title: headings are the titles as written
    group_by: str | None = None  # the manifest's report.group_by: the page groups its cards by it at first


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportCard:
    """One job of the current plan."""

    key: str
    index: int  # plan (manifest) order, from 0
    name: str
    replica: int
    title: str = ""  # its readable name (`hero · mug · 9:16 · take 2`): the card's heading
    state: str
    video_path: str | None  # POSIX path relative to the run directory; None when there is no file
    media_type: str = "video"  # "video" | "image"
    vars: Mapping[str, VarValue] = field(default_factory=dict)
    prompt: str = ""  # the prompt, or the multi_prompt shots joined (one per line)
    aspect_ratio: str | None = None
    duration_s: int | float | None = None
    cost_usd: Money | None = None  # the job's quote
    generation_id: str | None = None
    error: str | None = None
    sha256: str | None = None
    model: str | None = None
    billed_usd: Money | None = None  # what the provider's history says its generation was charged
    finished_at: str | None = None  # ISO-8601: when it completed at the provider
    kept_path: str | None = None  # unverified: where the bytes that failed verification are kept


# ---------------------------------------------------------------- rendering (pure)


def embed_json(data: Any) -> str:
    """JSON safe to place inside a <script> element: it cannot close the element or start markup."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def media_href(path: str | None) -> str | None:
    """A relative URL for a run-directory path (each segment percent-encoded), or None if the path
    is absent, absolute, or climbs out of the run directory."""
    if not path:
        return None
    parts = PurePosixPath(path).parts
    if not parts or parts[0] == "/" or ".." in parts or ":" in parts[0]:
        return None
    return "/".join(quote(part, safe="") for part in parts)


def render_report(header: ReportHeader, cards: Sequence[ReportCard]) -> str:
    """The whole report as one HTML document (UTF-8; the data inside is pure ASCII)."""
    return "".join(_render_parts(header, cards))


def _render_parts(header: ReportHeader, cards: Sequence[ReportCard]) -> Iterator[str]:
    """The document in pieces, a card's data at a time, so that writing it never holds it all: the
    same bytes as embedding {"format", "header", "cards"} at once (compact JSON, escaping per char)."""
    campaign = "".join(" " if ch in "\u2028\u2029" or not ch.isprintable() else ch for ch in header.campaign)
    title = html.escape(f"{campaign} · batchgen report", quote=True)  # the script sets the exact one
    yield (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
    )
    yield _BODY
    view = view_of(cards, group_by=header.group_by, own_titles=bool(header.title_template))
    opening = embed_json({"format": FORMAT, "header": _header_json(header, view)})
    yield f'<script type="application/json" id="batchgen-data">{opening[:-1]},"cards":['
    constants = frozenset(name for name, _ in view.constants)
    for number, card in enumerate(cards):
        yield ("," if number else "") + embed_json(_card_json(card, view, constants, money=header.show_money))
    yield f"]}}</script>\n<script>{_JS}</script>\n</body>\n</html>\n"


def amount_usd(value: Money | None) -> Decimal | None:
    """A finite amount in USD, or None when unknown or not a number."""
    if value is None:
        return None
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip().lstrip("$"))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _money(value: Money | None) -> tuple[str | None, float | None]:
    """(display, number) of an amount in USD; (None, None) when unknown."""
    if value is None:
        return None, None
    amount = amount_usd(value)
    if amount is None:
        return str(value), None
    return format_usd(amount), float(amount)


def _header_json(header: ReportHeader, view: View) -> dict[str, Any]:
    counts = {str(k): int(v) for k, v in header.counts.items()}
    ordered = {s: counts[s] for s in _STATE_ORDER if s in counts}
    ordered.update((s, n) for s, n in counts.items() if s not in ordered)
    data: dict[str, Any] = {
        "campaign": header.campaign,
        "generated_at": header.generated_at,
        "counts": [[state, n] for state, n in ordered.items()],
        "money": header.show_money,
        "sandbox": bool(header.sandbox),
        "api_origin": header.api_origin,
        "ran": [header.ran_from, header.ran_to] if header.ran_from else None,
        "constants": [_var_json(name, value) for name, value in view.constants],
        "filters": [
            {
                "name": f.name,
                "label": " · ".join("job" if name == JOB_AXIS else name for name in (f.name, *f.folded)),
                "options": [list(option) for option in f.options],
            }
            for f in view.filters
        ],
        "group_by": view.group_by,
    }
    if header.show_money:
        spend, spend_n = _money(header.spend_usd)
        budget, budget_n = _money(header.budget_usd)
        data.update(
            spend=spend if spend is not None else "unknown",
            spend_n=spend_n,
            spend_note=header.spend_note,
            budget=budget,
            budget_n=budget_n,
        )
    return data


def _var_json(name: str, value: Any) -> list[str]:
    """[name, value], or [name, its first characters, a tooltip saying how long it is]."""
    text, tooltip = shown_value(value)
    return [name, text] if tooltip is None else [name, text, tooltip]


def _card_json(card: ReportCard, view: View, constants: frozenset[str], *, money: bool) -> dict[str, Any]:
    duration = None if card.duration_s is None else f"{display_value(card.duration_s)} s"
    title = shown_or_fallback(card.title, card.name, card.key)
    data: dict[str, Any] = {
        "key": card.key,
        "index": card.index,
        "name": card.name,
        "title": title,
        "heading": view.heading(title),
        "replica": card.replica,
        "state": card.state,
        "pickable": card.state == "done" and card.video_path is not None,
        "path": card.video_path,
        "href": media_href(card.video_path),
        "media": "image" if card.media_type == "image" else "video",
        "vars": [_var_json(str(k), v) for k, v in card.vars.items() if str(k) not in constants],
        "prompt": card.prompt,
        "aspect": card.aspect_ratio,
        "ratio": _ratio(card.aspect_ratio),
        "duration": duration,
        "generation_id": card.generation_id,
        "error": card.error,
        "sha256": card.sha256,
        "model": card.model,
        "finished_at": card.finished_at,
        "kept": card.kept_path,
        "kept_href": media_href(card.kept_path),
    }
    if money:  # a card that ended without a result shows no price (the header counts any charge)
        cost, cost_n = _money(None if card.state in NO_RESULT else card.cost_usd)
        data.update(cost=cost, cost_n=cost_n, billed=_money(card.billed_usd)[0])
    return data


def _ratio(aspect: str | None) -> list[float] | None:
    """[width, height] of an aspect ratio written `16:9`; None for anything else."""
    width, _, height = (aspect or "").partition(":")
    try:
        numbers = [float(width), float(height)]
    except ValueError:
        return None
    return numbers if all(0 < n < 1e4 for n in numbers) else None


# ---------------------------------------------------------------- the one write


def write_report(
    run_dir: Path, header: ReportHeader, cards: Sequence[ReportCard], *, name: str = REPORT_NAME
) -> Path:
    """Render and write `run_dir/name` atomically (a reader never sees half a file); return its path."""
    target = run_dir / name
    with atomic_writer(target) as file:
        file.writelines(_render_parts(header, cards))
    return target


# ---------------------------------------------------------------- the page


def _asset(name: str) -> str:
    return resources.files("batchgen").joinpath("data", "report", name).read_text("utf-8")


# The page's markup, style and script live beside this module as plain files (easier to read and
# lint); the script's two files share one strict function scope.
_BODY = _asset("body.html")
_CSS = _asset("style.css")
_JS = '(() => {\n"use strict";\n' + _asset("cards.js") + _asset("view.js") + "})();\n"


def _hash(source: str) -> str:
    return (
        "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii") + "'"
    )


_CSP = (
    f"default-src 'none'; script-src {_hash(_JS)}; style-src {_hash(_CSS)}; "
    "img-src 'self' file: data: blob:; media-src 'self' file: blob:; base-uri 'none'; form-action 'none'"
)
