"""report.html: a self-contained contact sheet of a run, to review a batch the morning after.

`render_report(header, cards)` is pure: data in, one HTML string out (no CDN, no server; it opens
from file:// and links the results relatively). `load_report(run_dir)` builds that data from a run
directory's plan.json and results.jsonl; `write_report` writes the file atomically.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import yaml

from batchgen.errors import StorageError, UsageError
from batchgen.registry.pricing import format_usd
from batchgen.states import IN_FLIGHT, NEEDS_DOWNLOAD, JobState

__all__ = [
    "REPORT_NAME",
    "ReportCard",
    "ReportHeader",
    "embed_json",
    "load_report",
    "media_href",
    "prompt_of",
    "render_report",
    "write_report",
]

REPORT_NAME = "report.html"
FORMAT = "batchgen-report/1"
VarValue = str | int | float
Money = str | Decimal

#: States whose generation exists or may exist at the provider: they count towards the quoted spend.
CHARGED_STATES = frozenset(str(s) for s in IN_FLIGHT | NEEDS_DOWNLOAD | {JobState.DONE})
_STATE_ORDER = ("failed", "invalid", "cancelled", "pending", "submitting", "queued", "processing",
                "succeeded", "downloading", "done")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportHeader:
    """What the top of the report says about the whole run."""

    campaign: str  # the manifest's name (also keys the picks kept in the browser's localStorage)
    generated_at: str  # ISO-8601
    counts: Mapping[str, int]  # jobs per state
    spend_usd: Money | None  # quoted spend of the generations that exist; None when unpriced
    budget_usd: Money | None = None
    sandbox: bool = False
    api_origin: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportCard:
    """One job of the current plan."""

    key: str
    index: int  # plan (manifest) order, from 0
    name: str
    replica: int  # shown as "take replica+1"
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


# ---------------------------------------------------------------- rendering (pure)


def embed_json(data: Any) -> str:
    """JSON safe to place inside a <script> element: it cannot close the element or start markup."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


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
    data = {"format": FORMAT, "header": _header_json(header), "cards": [_card_json(c) for c in cards]}
    campaign = "".join(" " if ch in "\u2028\u2029" or not ch.isprintable() else ch for ch in header.campaign)
    title = html.escape(f"{campaign} · batchgen report", quote=True)  # the script sets the exact one
    return "".join((
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">\n",
        "<meta name=\"referrer\" content=\"no-referrer\">\n",
        "<meta name=\"color-scheme\" content=\"light dark\">\n",
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n",
        _BODY,
        f"<script type=\"application/json\" id=\"batchgen-data\">{embed_json(data)}</script>\n",
        f"<script>{_JS}</script>\n</body>\n</html>\n",
    ))


def _money(value: Money | None) -> tuple[str | None, float | None]:
    """(display, number) of an amount in USD; (None, None) when unknown."""
    if value is None:
        return None, None
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip().lstrip("$"))
    except InvalidOperation:
        return str(value), None
    if not amount.is_finite():
        return str(value), None
    return format_usd(amount), float(amount)


def _display(value: Any) -> str:
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
        "budget": budget,
        "budget_n": budget_n,
        "sandbox": bool(header.sandbox),
        "api_origin": header.api_origin,
    }


def _card_json(card: ReportCard) -> dict[str, Any]:
    cost, cost_n = _money(card.cost_usd)
    duration = None if card.duration_s is None else f"{_display(card.duration_s)} s"
    return {
        "key": card.key,
        "index": card.index,
        "name": card.name,
        "replica": card.replica,
        "state": card.state,
        "path": card.video_path,
        "href": media_href(card.video_path),
        "media": "image" if card.media_type == "image" else "video",
        "vars": [[str(k), _display(v)] for k, v in card.vars.items()],
        "prompt": card.prompt,
        "aspect": card.aspect_ratio,
        "duration": duration,
        "cost": cost,
        "cost_n": cost_n,
        "generation_id": card.generation_id,
        "error": card.error,
        "sha256": card.sha256,
        "model": card.model,
    }


# ---------------------------------------------------------------- a run directory -> data


def load_report(
    run_dir: Path,
    *,
    generated_at: str | None = None,
    budget_usd: Money | None = None,
    sandbox: bool = False,
    api_origin: str | None = None,
) -> tuple[ReportHeader, list[ReportCard]]:
    """Header and cards from `run_dir`'s plan.json (the jobs) and results.jsonl (their outcome).

    A job with no results row is `pending`. The budget defaults to `run.budget_usd` of the run's
    manifest.yaml copy; sandbox and API origin are not recorded in the run directory, so pass them.
    """
    plan = _read_plan(run_dir)
    rows = _read_results(run_dir)
    cards = [_card_from(job, rows.get(str(job.get("key"))), run_dir) for job in plan.get("jobs", [])]
    counts: dict[str, int] = {}
    for card in cards:
        counts[card.state] = counts.get(card.state, 0) + 1
    header = ReportHeader(
        campaign=str(plan.get("name") or run_dir.name),
        generated_at=generated_at or datetime.now(UTC).isoformat(timespec="seconds"),
        counts=counts,
        spend_usd=_spend(cards),
        budget_usd=budget_usd if budget_usd is not None else _manifest_budget(run_dir),
        sandbox=sandbox,
        api_origin=api_origin,
    )
    return header, cards


def _read_plan(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "plan.json"
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{run_dir} is not a batchgen run directory (no plan.json)") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    if not isinstance(plan, dict) or plan.get("format") != "batchgen-plan/1":
        raise UsageError(f"{path} is not a batchgen plan (format batchgen-plan/1)")
    return plan


def _read_results(run_dir: Path) -> dict[str, dict[str, Any]]:
    path = run_dir / "results.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    rows: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{path}:{number}: not JSON: {exc}") from exc
        if isinstance(row, dict) and isinstance(row.get("key"), str):
            rows[row["key"]] = row
    return rows


def _card_from(job: Mapping[str, Any], row: Mapping[str, Any] | None, run_dir: Path) -> ReportCard:
    row = row or {}
    request = job.get("request") or {}
    path = _str(row.get("output_path")) or f"videos/{job.get('output_path', '')}"
    exists = media_href(path) is not None and (run_dir / path).is_file()
    return ReportCard(
        key=str(job["key"]),
        index=int(job["index"]),
        name=str(job.get("name", "")),
        replica=int(job.get("replica", 0)),
        state=_str(row.get("state")) or "pending",
        video_path=path if exists else None,
        media_type=str(job.get("media_type") or "video"),
        vars={str(k): v if isinstance(v, str | int | float) and not isinstance(v, bool) else _display(v)
              for k, v in (job.get("vars") or {}).items()},
        prompt=prompt_of(request),
        aspect_ratio=_str(request.get("aspect_ratio")),
        duration_s=job.get("duration_s"),
        cost_usd=_str(job.get("cost_usd")),
        generation_id=_str(row.get("generation_id")),
        error=_str(row.get("error")),
        sha256=_str(row.get("sha256")),
        model=_str(job.get("model")),
    )


def prompt_of(request: Mapping[str, Any]) -> str:
    """The request's prompt, or its multi_prompt shots one per line ("Shot 1 (5 s): ...")."""
    prompt = request.get("prompt")
    if isinstance(prompt, str) and prompt:
        return prompt
    shots = request.get("multi_prompt")
    if isinstance(shots, list):
        lines = []
        for number, shot in enumerate(shots, 1):
            text = shot.get("prompt", "") if isinstance(shot, Mapping) else shot
            seconds = shot.get("duration") if isinstance(shot, Mapping) else None
            length = f" ({_display(seconds)} s)" if seconds is not None else ""
            lines.append(f"Shot {number}{length}: {_display(text)}")
        return "\n".join(lines)
    return ""


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _spend(cards: Sequence[ReportCard]) -> Decimal | None:
    total = Decimal(0)
    for card in cards:
        if card.state in CHARGED_STATES:
            if card.cost_usd is None:
                return None
            total += Decimal(str(card.cost_usd))
    return total


def _manifest_budget(run_dir: Path) -> str | None:
    try:
        manifest = yaml.safe_load((run_dir / "manifest.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None
    run = manifest.get("run") if isinstance(manifest, dict) else None
    budget = run.get("budget_usd") if isinstance(run, dict) else None
    if isinstance(budget, bool) or not isinstance(budget, int | float | str):
        return None
    return str(budget)


# ---------------------------------------------------------------- the one write


def write_report(run_dir: Path, header: ReportHeader, cards: Sequence[ReportCard],
                 *, name: str = REPORT_NAME) -> Path:
    """Render and write `run_dir/name` atomically (a reader never sees half a file); return its path."""
    text = render_report(header, cards)
    target = run_dir / name
    tmp = run_dir / f".{name}.tmp"
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target


# ---------------------------------------------------------------- the page

_BODY = """\
<header class="top">
  <div class="title"><h1 id="campaign"></h1><span id="badges"></span></div>
  <p class="meta" id="meta"></p>
  <div class="summary"><div id="counts" class="counts"></div><p id="spend" class="spend"></p></div>
  <details id="failures" class="failures" open hidden><summary id="failures-title"></summary><ol id="failure-list"></ol></details>
</header>
<nav class="bar" id="bar" aria-label="filter, sort and picks">
  <input id="search" type="search" placeholder="Search name, prompt, key…" aria-label="search">
  <label>State <select id="state-filter"></select></label>
  <span id="var-filters" class="var-filters"></span>
  <label>Sort <select id="sort">
    <option value="manifest">manifest order</option><option value="name">name</option>
    <option value="state">state</option><option value="cost">cost (high first)</option>
  </select></label>
  <label class="check"><input id="failures-first" type="checkbox" checked> failures first</label>
  <label class="check"><input id="only-picked" type="checkbox"> only picked</label>
  <span class="picks"><strong id="pick-count">0 picked</strong>
    <button id="export" type="button" disabled>Export picks (CSV)</button>
    <button id="clear-picks" type="button" disabled>Clear</button></span>
  <span id="shown" class="shown"></span>
</nav>
<main><p id="empty" class="empty" hidden>No job matches these filters.</p><div id="grid" class="grid"></div></main>
<a id="pick-float" class="pick-float" href="#bar" hidden></a>
<noscript><p class="empty">This report needs JavaScript to show its cards.</p></noscript>
"""

_CSS = """
:root{--bg:#f6f6f4;--fg:#1c1c1c;--muted:#666;--card:#fff;--line:#ddd;--media:#111;--accent:#2458d6;
--done:#1d7a3a;--fail:#c0262d;--invalid:#b35a00;--other:#4b5563;--pick:#e0a100;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;font-size:15px;line-height:1.4}
@media (prefers-color-scheme:dark){:root{--bg:#15171a;--fg:#e8e8e6;--muted:#9aa0a6;--card:#202328;
--line:#353a40;--media:#000;--accent:#7aa2ff;--done:#4cc36f;--fail:#ff6b6b;--invalid:#ffa24a;--other:#a0a8b4}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg)}
.top{padding:16px 20px 8px}
.title{display:flex;flex-wrap:wrap;align-items:baseline;gap:10px}
h1{font-size:1.5rem;margin:0;overflow-wrap:anywhere}
.badge{font-size:.75rem;padding:2px 8px;border-radius:99px;border:1px solid var(--line);color:var(--muted)}
.badge.sandbox{border-color:var(--invalid);color:var(--invalid)}
.meta{margin:4px 0 10px;color:var(--muted);font-size:.9rem;overflow-wrap:anywhere}
.summary{display:flex;flex-wrap:wrap;gap:8px 24px;align-items:center}
.counts{display:flex;flex-wrap:wrap;gap:6px}
.count{font:inherit;font-size:.85rem;cursor:pointer;padding:3px 10px;border-radius:99px;border:1px solid var(--line);
background:var(--card);color:var(--fg)}
.count[aria-pressed=true]{outline:2px solid var(--accent)}
.spend{margin:0;display:flex;gap:8px;align-items:center}
.spend meter{width:140px}
.failures{margin:12px 0 4px;padding:8px 14px;border-left:4px solid var(--fail);background:var(--card);
max-height:30vh;overflow:auto}
.failures summary{font-weight:600;margin:0 0 4px;color:var(--fail);cursor:pointer}
.failures ol{margin:0;padding-left:1.4em;font-size:.9rem}
.failures a{color:inherit}
.failures .err{color:var(--muted);overflow-wrap:anywhere}
.bar{position:sticky;top:0;z-index:2;display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center;
padding:8px 20px;background:var(--bg);border-bottom:1px solid var(--line);font-size:.9rem}
.bar select{max-width:14em}
.bar select,.bar input[type=search],.bar button{font:inherit;font-size:.9rem;color:var(--fg);background:var(--card);
border:1px solid var(--line);border-radius:6px;padding:3px 6px}
.bar input[type=search]{min-width:12em;flex:0 1 18em}
.bar button:not(:disabled){cursor:pointer}
.bar button:disabled{opacity:.5}
.var-filters{display:contents}
.check{white-space:nowrap}
.picks{display:flex;gap:6px;align-items:center}
.shown{color:var(--muted);margin-left:auto}
main{padding:14px 20px 40px}
.grid{display:grid;gap:14px;grid-template-columns:repeat(auto-fill,minmax(min(100%,270px),1fr))}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;overflow:hidden;display:flex;
flex-direction:column;content-visibility:auto;contain-intrinsic-size:auto 480px}
.card.failed,.card.invalid{border-color:var(--fail)}
.card.picked{outline:3px solid var(--pick);outline-offset:-1px}
.media{position:relative;aspect-ratio:4/3;overflow:hidden;background:var(--media);display:flex;
align-items:center;justify-content:center}
.media video,.media img{position:absolute;inset:0;width:100%;height:100%;object-fit:contain;display:block}
.nofile{color:#bbb;font-size:.9rem;text-align:center;padding:8px}
.body{padding:8px 12px 12px;display:flex;flex-direction:column;gap:6px;min-width:0}
.row{display:flex;align-items:center;gap:8px;flex-wrap:wrap}
.pick{display:flex;gap:4px;align-items:center;cursor:pointer;font-weight:600}
.pick input{width:18px;height:18px;margin:0}
.state{font-size:.75rem;font-weight:600;text-transform:uppercase;letter-spacing:.04em;padding:1px 7px;
border-radius:4px;color:#fff;background:var(--other)}
.state.done{background:var(--done)}.state.failed{background:var(--fail)}.state.invalid{background:var(--invalid)}
.cost{margin-left:auto;font-variant-numeric:tabular-nums}
.name{font-size:1rem;margin:0;overflow-wrap:anywhere}
.take{font-weight:400;color:var(--muted);font-size:.85rem;margin-left:6px}
.vars{display:flex;flex-wrap:wrap;gap:4px;margin:0;padding:0;list-style:none;font-size:.8rem}
.vars li{border:1px solid var(--line);border-radius:4px;padding:0 5px;overflow-wrap:anywhere}
.vars .k{color:var(--muted)}
.prompt{margin:0;font-size:.88rem;white-space:pre-line;overflow-wrap:anywhere;display:-webkit-box;
-webkit-line-clamp:4;-webkit-box-orient:vertical;overflow:hidden;cursor:pointer}
.prompt.open{display:block}
.error{margin:0;font-size:.85rem;color:var(--fail);overflow-wrap:anywhere;white-space:pre-line}
.facts{display:grid;grid-template-columns:auto 1fr;gap:0 8px;margin:0;font-size:.78rem;color:var(--muted)}
.facts dt{font-weight:600}.facts dd{margin:0;overflow-wrap:anywhere;font-family:ui-monospace,Menlo,Consolas,monospace}
.facts a{color:var(--accent)}
.more{font-size:.78rem;color:var(--muted)}.more summary{cursor:pointer}
.more .facts{margin-top:4px}
.empty{padding:30px;text-align:center;color:var(--muted)}
.pick-float{display:none}
@media (max-width:600px){.top,.bar,main{padding-left:10px;padding-right:10px}.shown{margin-left:0}
.grid{gap:10px}.bar{position:static}
.pick-float:not([hidden]){display:block;position:fixed;right:12px;bottom:12px;z-index:3;padding:6px 12px;
border-radius:99px;background:var(--pick);color:#000;font-weight:600;text-decoration:none}}
"""

_JS = r"""
(() => {
"use strict";
const DATA = JSON.parse(document.getElementById("batchgen-data").textContent);
const H = DATA.header;
const CARDS = DATA.cards;
const FAILED = new Set(["failed", "invalid"]);
const RANK = {failed: 0, invalid: 1, cancelled: 2, pending: 3, submitting: 4, queued: 5, processing: 6,
  succeeded: 7, downloading: 8, done: 9};
const MAX_VAR_VALUES = 200;
const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
function take(c) { return "take " + (c.replica + 1); }
function stateClass(state) { return /^[a-z]+$/.test(state) ? state : "other"; }  // a CSS token, never more
function rank(state) { return Object.prototype.hasOwnProperty.call(RANK, state) ? RANK[state] : 5; }

// ---------------------------------------------------------------- picks (kept per campaign)
const STORE = "batchgen-report-picks:" + H.campaign;
const KEYS = new Set(CARDS.map((c) => c.key));
const picks = new Set();
try {
  const saved = JSON.parse(localStorage.getItem(STORE) || "[]");
  if (Array.isArray(saved)) for (const k of saved) if (KEYS.has(k)) picks.add(k);
} catch (e) { /* no storage (private mode, quota): picks live for this page only */ }
function savePicks() {
  try { localStorage.setItem(STORE, JSON.stringify([...picks])); } catch (e) { /* see above */ }
}

// ---------------------------------------------------------------- header
document.title = H.campaign + " · batchgen report";
$("campaign").textContent = H.campaign;
if (H.sandbox) $("badges").append(el("span", "badge sandbox", "sandbox: emulator, nothing paid"));
const MODELS = [...new Set(CARDS.map((c) => c.model).filter(Boolean))];
$("meta").textContent = "Generated " + H.generated_at + " · " + CARDS.length + " jobs" +
  (MODELS.length === 1 ? " · " + MODELS[0] : "") + (H.api_origin ? " · API " + H.api_origin : "");
const countButtons = [];
for (const [state, n] of H.counts) {
  const b = el("button", "count", state + " " + n);
  b.type = "button";
  b.dataset.state = state;
  b.setAttribute("aria-pressed", "false");
  b.addEventListener("click", () => {
    const select = $("state-filter");
    select.value = select.value === state ? "" : state;
    apply();
  });
  countButtons.push(b);
  $("counts").append(b);
}
$("spend").append(el("span", "", "Quoted spend " + H.spend + (H.budget ? " of " + H.budget + " budget" : "")));
if (H.budget_n && H.spend_n !== null) {
  const m = el("meter");
  m.min = 0; m.max = H.budget_n; m.high = H.budget_n * 0.9; m.value = Math.min(H.spend_n, H.budget_n);
  m.title = Math.round(100 * H.spend_n / H.budget_n) + "% of the budget";
  $("spend").append(m);
}
const failures = CARDS.filter((c) => FAILED.has(c.state));
if (failures.length) {
  $("failures").hidden = false;
  $("failures-title").textContent = failures.length + (failures.length === 1 ? " job needs" : " jobs need") +
    " a look (failed or invalid)";
  for (const c of failures) {
    const li = el("li");
    const a = el("a", "", c.name + " · " + take(c));
    a.href = "#card-" + c.index;
    a.addEventListener("click", () => { if (!nodes.get(c.key).isConnected) resetFilters(); });
    li.append(a, el("span", "", " · " + c.state + " "));
    const vars = c.vars.map(([k, v]) => k + "=" + v).join(", ");
    if (vars) li.append(el("span", "", "(" + vars + ") "));
    if (c.error) li.append(el("span", "err", "— " + c.error));
    $("failure-list").append(li);
  }
}

// ---------------------------------------------------------------- cards
const lazy = "IntersectionObserver" in window ? new IntersectionObserver(onSight, {rootMargin: "800px 0px"}) : null;
let keepLoaded = !lazy;
const nodes = new Map();
const haystacks = new Map();
const cardOf = new Map();  // card element -> its data

// A card's <video> or <img> exists only while the card is near the viewport: thousands of media
// elements (each with its controls and, once loaded, a decoder) would make the page crawl.
function mountMedia(card) {
  const c = cardOf.get(card);
  const box = card.firstChild;
  if (!c.href || box.firstChild) return;
  let media;
  if (c.media === "image") {
    media = el("img");
    media.alt = c.name + " " + take(c);
    media.decoding = "async";
  } else {
    media = el("video");
    media.controls = true; media.muted = true; media.defaultMuted = true; media.loop = true;
    media.playsInline = true;
    media.preload = "metadata";
    media.setAttribute("aria-label", c.name + " " + take(c));
    media.addEventListener("mouseenter", () => media.play().catch(() => {}));
    media.addEventListener("mouseleave", () => media.pause());
  }
  media.src = c.href;
  box.append(media);
}
function unmountMedia(card) {
  const media = card.firstChild.firstChild;
  if (!media || !cardOf.get(card).href) return;
  if (media.tagName === "VIDEO") {
    media.pause();
    media.removeAttribute("src");
    media.load();  // releases the player now rather than at garbage collection
  }
  media.remove();
}
function onSight(entries) {
  for (const e of entries) {
    if (e.isIntersecting) mountMedia(e.target);
    else if (!keepLoaded) unmountMedia(e.target);
  }
}

function fact(dl, term, value, title) {
  if (value === null || value === undefined || value === "") return;
  dl.append(el("dt", "", term));
  const dd = el("dd", "", value);
  if (title) dd.title = title;
  dl.append(dd);
}

function buildCard(c) {
  const card = el("article", "card " + stateClass(c.state));
  card.id = "card-" + c.index;
  card.dataset.key = c.key;
  card.dataset.state = c.state;
  const box = el("div", "media");
  if (!c.href) box.append(el("div", "nofile", "no file (" + c.state + ")"));
  const body = el("div", "body");
  const row = el("div", "row");
  const pick = el("label", "pick");
  const box2 = el("input");
  box2.type = "checkbox";
  box2.className = "pick-box";
  box2.checked = picks.has(c.key);
  box2.addEventListener("change", () => setPick(c.key, box2.checked));
  pick.append(box2, el("span", "", "Pick"));
  row.append(pick, el("span", "state " + stateClass(c.state), c.state));
  if (c.cost) row.append(el("span", "cost", c.cost));
  const title = el("h2", "name", c.name);
  const t = el("span", "take", take(c));
  t.title = "replica " + c.replica;
  title.append(t);
  body.append(row, title);
  if (c.vars.length) {
    const ul = el("ul", "vars");
    for (const [k, v] of c.vars) {
      const li = el("li");
      li.append(el("span", "k", k + " "), el("span", "v", v));
      ul.append(li);
    }
    body.append(ul);
  }
  if (c.prompt) {
    const p = el("p", "prompt", c.prompt);
    p.title = "click to expand";
    p.addEventListener("click", () => p.classList.toggle("open"));
    body.append(p);
  }
  if (c.error) body.append(el("p", "error", c.error));
  const dl = el("dl", "facts");
  fact(dl, "format", [c.aspect, c.duration].filter(Boolean).join(" · "));
  fact(dl, "generation", c.generation_id);
  body.append(dl);
  const more = el("details", "more");
  more.append(el("summary", "", "key, sha256, file"));
  const dl2 = el("dl", "facts");
  fact(dl2, "key", c.key);
  fact(dl2, "sha256", c.sha256);
  fact(dl2, "model", c.model);
  if (c.href) {
    dl2.append(el("dt", "", "file"));
    const dd = el("dd");
    const a = el("a", "", c.path);
    a.href = c.href;
    a.target = "_blank";
    a.rel = "noopener";
    dd.append(a);
    dl2.append(dd);
  } else if (c.path) {
    fact(dl2, "file", c.path);
  }
  more.append(dl2);
  body.append(more);
  card.append(box, body);
  if (picks.has(c.key)) card.classList.add("picked");
  return card;
}

for (const c of CARDS) {
  const card = buildCard(c);
  nodes.set(c.key, card);
  cardOf.set(card, c);
  haystacks.set(c.key, [c.name, c.prompt, c.key, c.generation_id, c.error, c.path, c.state,
    ...c.vars.map((kv) => kv[1])].filter(Boolean).join("\n").toLowerCase());
  if (lazy) lazy.observe(card);
}

// ---------------------------------------------------------------- filters and sort
const stateSelect = $("state-filter");
const stateCounts = new Map();
for (const c of CARDS) stateCounts.set(c.state, (stateCounts.get(c.state) || 0) + 1);
function option(select, value, label) {
  const o = el("option", "", label);
  o.value = value;
  select.append(o);
}
option(stateSelect, "", "all (" + CARDS.length + ")");
if (failures.length) option(stateSelect, "@failures", "failed + invalid (" + failures.length + ")");
for (const s of [...stateCounts.keys()].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : 1))) {
  option(stateSelect, s, s + " (" + stateCounts.get(s) + ")");
}

// A select for the job name and one per variable, each when it has 2..MAX_VAR_VALUES distinct
// values, listed in manifest order. An axis is [select, value of a card]; `null` means "all".
function valueOf(c, name) {
  for (const [k, v] of c.vars) if (k === name) return v;
  return undefined;
}
const names = new Map();
const vars = new Map();
for (const c of CARDS) {
  names.set(c.name, (names.get(c.name) || 0) + 1);
  for (const [k, v] of c.vars) {
    if (!vars.has(k)) vars.set(k, new Map());
    vars.get(k).set(v, (vars.get(k).get(v) || 0) + 1);
  }
}
const axes = [];
function addAxis(label, values, get, setup) {
  if (values.size < 2 || values.size > MAX_VAR_VALUES) return;
  const wrap = el("label", "", label + " ");
  const select = el("select");
  setup(select);
  option(select, "", "all");
  for (const [v, n] of values) option(select, v, v + " (" + n + ")");
  select.addEventListener("change", apply);
  wrap.append(select);
  $("var-filters").append(wrap);
  axes.push([select, get]);
}
addAxis("job", names, (c) => c.name, (s) => { s.id = "job-filter"; });
for (const [name, values] of vars) {
  addAxis(name, values, (c) => valueOf(c, name), (s) => { s.className = "var-filter"; s.dataset.var = name; });
}

function matches(c, f) {
  if (f.state === "@failures" ? !FAILED.has(c.state) : f.state && c.state !== f.state) return false;
  if (f.onlyPicked && !picks.has(c.key)) return false;
  for (const [get, value] of f.axes) if (get(c) !== value) return false;
  return !f.q || haystacks.get(c.key).includes(f.q);
}

const SORTS = {
  manifest: () => 0,
  name: (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.replica - b.replica),
  state: (a, b) => rank(a.state) - rank(b.state),
  cost: (a, b) => (b.cost_n ?? -1) - (a.cost_n ?? -1),
};

let visible = [];
function apply() {
  const f = {
    state: stateSelect.value,
    q: $("search").value.trim().toLowerCase(),
    onlyPicked: $("only-picked").checked,
    axes: axes.filter(([s]) => s.value !== "").map(([s, get]) => [get, s.value]),
  };
  const by = SORTS[$("sort").value] || SORTS.manifest;
  const failuresFirst = $("failures-first").checked;
  visible = CARDS.filter((c) => matches(c, f)).sort((a, b) =>
    (failuresFirst ? FAILED.has(b.state) - FAILED.has(a.state) : 0) || by(a, b) || a.index - b.index);
  const frag = document.createDocumentFragment();
  for (const c of visible) frag.append(nodes.get(c.key));
  $("grid").replaceChildren(frag);
  $("empty").hidden = visible.length > 0;
  $("shown").textContent = visible.length + " of " + CARDS.length + " shown";
  for (const b of countButtons) b.setAttribute("aria-pressed", String(stateSelect.value === b.dataset.state));
}

function resetFilters() {
  stateSelect.value = "";
  $("search").value = "";
  $("only-picked").checked = false;
  for (const [select] of axes) select.value = "";
  apply();
}

let typing = 0;
$("search").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(apply, 120); });
for (const id of ["state-filter", "sort", "failures-first", "only-picked"]) $(id).addEventListener("change", apply);

// ---------------------------------------------------------------- picking and export
function showPicks() {
  const n = picks.size;
  $("pick-count").textContent = n + " picked";
  $("pick-float").textContent = n + " picked · export";
  $("pick-float").hidden = n === 0;
  $("export").disabled = n === 0;
  $("clear-picks").disabled = n === 0;
}
function setPick(key, on) {
  if (on) picks.add(key); else picks.delete(key);
  const card = nodes.get(key);
  card.classList.toggle("picked", on);
  card.querySelector(".pick-box").checked = on;
  savePicks();
  showPicks();
  if ($("only-picked").checked) apply();
}
function csvField(value) {
  let s = value === null || value === undefined ? "" : String(value);
  if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;  // a spreadsheet must not run it as a formula
  return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}
function picksCsv() {
  const rows = [["key", "path", "name", "replica", "state"]];
  for (const c of CARDS) if (picks.has(c.key)) rows.push([c.key, c.path, c.name, c.replica, c.state]);
  return rows.map((r) => r.map(csvField).join(",")).join("\n") + "\n";
}
let lastExport = null;
function exportPicks() {
  const text = picksCsv();
  const filename = (H.campaign.replace(/[^A-Za-z0-9._-]+/g, "_") || "report") + "-picks.csv";
  const url = URL.createObjectURL(new Blob([text], {type: "text/csv;charset=utf-8"}));
  const a = el("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  lastExport = {filename, text};
}
$("export").addEventListener("click", exportPicks);
$("clear-picks").addEventListener("click", () => { for (const k of [...picks]) setPick(k, false); });

// For scripts and tests: read-only views and the same actions the controls use.
window.batchgenReport = Object.freeze({
  csv: picksCsv,
  lastExport: () => lastExport,
  picks: () => CARDS.filter((c) => picks.has(c.key)).map((c) => c.key),
  visibleKeys: () => visible.map((c) => c.key),
  loadAll: () => { keepLoaded = true; for (const card of nodes.values()) mountMedia(card); },
});

showPicks();
apply();
})();
"""


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii") + "'"


_CSP = (
    f"default-src 'none'; script-src {_hash(_JS)}; style-src {_hash(_CSS)}; "
    "img-src 'self' file: data: blob:; media-src 'self' file: blob:; base-uri 'none'; form-action 'none'"
)
