"""report.html: a self-contained contact sheet of a run, to review a batch the morning after.

`render_report(header, cards)` is pure: data in, one HTML string out (no CDN, no server; it opens
from file:// and links the results relatively); `write_report` writes it atomically, a card at a
time. The data comes from `report_data` (a run's end, or a run directory's plan.json and results).

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
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from batchgen.naming import shown_or_fallback
from batchgen.registry.pricing import format_usd
from batchgen.rundir.layout import atomic_writer
from batchgen.states import BILLED

__all__ = [
    "REPORT_NAME",
    "ReportCard",
    "ReportHeader",
    "amount_usd",
    "display_value",
    "embed_json",
    "media_href",
    "render_report",
    "write_report",
]

REPORT_NAME = "report.html"
FORMAT = "batchgen-report/1"
VarValue = str | int | float
Money = str | Decimal
#: A variable's value longer than this is shortened on the cards (the whole one is in the results).
MAX_SHOWN_CHARS = 200

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
    opening = embed_json({"format": FORMAT, "header": _header_json(header)})
    yield f'<script type="application/json" id="batchgen-data">{opening[:-1]},"cards":['
    for number, card in enumerate(cards):
        yield ("," if number else "") + embed_json(_card_json(card))
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


def display_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return str(int(value)) if abs(value) < 1e15 else str(value)
    if isinstance(value, str | int | float | Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _header_json(header: ReportHeader) -> dict[str, Any]:
    spend, spend_n = _money(header.spend_usd)
    budget, budget_n = _money(header.budget_usd)
    counts = {str(k): int(v) for k, v in header.counts.items()}
    ordered = {s: counts[s] for s in _STATE_ORDER if s in counts}
    ordered.update((s, n) for s, n in counts.items() if s not in ordered)
    return {
        "campaign": header.campaign,
        "generated_at": header.generated_at,
        "counts": [[state, n] for state, n in ordered.items()],
        "spend": spend if spend is not None else "unknown",
        "spend_n": spend_n,
        "spend_note": header.spend_note,
        "budget": budget,
        "budget_n": budget_n,
        "sandbox": bool(header.sandbox),
        "api_origin": header.api_origin,
        "ran": [header.ran_from, header.ran_to] if header.ran_from else None,
    }


def _var_json(name: str, value: VarValue) -> list[str]:
    """[name, value], or [name, its first MAX_SHOWN_CHARS characters, a tooltip] for a long value: a
    100 KB value on every card would bury the page (results.csv keeps it whole)."""
    text = display_value(value)
    if len(text) <= MAX_SHOWN_CHARS:
        return [name, text]
    return [
        name,
        text[:MAX_SHOWN_CHARS] + "…",
        f"{len(text):,} characters, shortened here; results.csv has it whole",
    ]


def _card_json(card: ReportCard) -> dict[str, Any]:
    cost, cost_n = _money(card.cost_usd)
    duration = None if card.duration_s is None else f"{display_value(card.duration_s)} s"
    return {
        "key": card.key,
        "index": card.index,
        "name": card.name,
        "title": shown_or_fallback(card.title, card.name, card.key),
        "replica": card.replica,
        "state": card.state,
        "path": card.video_path,
        "href": media_href(card.video_path),
        "media": "image" if card.media_type == "image" else "video",
        "vars": [_var_json(str(k), v) for k, v in card.vars.items()],
        "prompt": card.prompt,
        "aspect": card.aspect_ratio,
        "duration": duration,
        "cost": cost,
        "cost_n": cost_n,
        "generation_id": card.generation_id,
        "error": card.error,
        "sha256": card.sha256,
        "model": card.model,
        "billed": _money(card.billed_usd)[0],
        "finished_at": card.finished_at,
        "kept": card.kept_path,
        "kept_href": media_href(card.kept_path),
    }


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


# The page's markup, style and script live beside this module as plain files (easier to read and lint).
_BODY = _asset("body.html")
_CSS = _asset("style.css")
_JS = _asset("script.js")


def _hash(source: str) -> str:
    return (
        "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii") + "'"
    )


_CSP = (
    f"default-src 'none'; script-src {_hash(_JS)}; style-src {_hash(_CSS)}; "
    "img-src 'self' file: data: blob:; media-src 'self' file: blob:; base-uri 'none'; form-action 'none'"
)
