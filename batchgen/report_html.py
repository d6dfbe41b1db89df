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
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import yaml

from batchgen.errors import StorageError, UsageError
from batchgen.registry.pricing import format_usd
from batchgen.report import prompt_of
from batchgen.states import IN_FLIGHT, NEEDS_DOWNLOAD, JobState

__all__ = [
    "REPORT_NAME",
    "ReportCard",
    "ReportHeader",
    "embed_json",
    "load_report",
    "media_href",
    "prompt_of",
    "read_plan",
    "render_report",
    "write_report",
]

REPORT_NAME = "report.html"
FORMAT = "batchgen-report/1"
VarValue = str | int | float
Money = str | Decimal

#: States whose generation exists or may exist at the provider: they count towards the quoted spend.
CHARGED_STATES = frozenset(str(s) for s in IN_FLIGHT | NEEDS_DOWNLOAD | {JobState.DONE})
_STATE_ORDER = (
    "failed",
    "invalid",
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
    spend_usd: Money | None  # quoted spend of the generations that exist; None when unpriced
    budget_usd: Money | None = None
    sandbox: bool = False
    api_origin: str | None = None
    billed_usd: Money | None = None  # what the provider's history billed, summed over `billed_jobs`
    billed_jobs: int = 0
    ran_from: str | None = None  # ISO-8601: the first submission
    ran_to: str | None = None  # ISO-8601: the last completion or download


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
    billed_usd: Money | None = None  # what the provider's history says its generation was charged
    finished_at: str | None = None  # ISO-8601: when it completed at the provider


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
    data = {"format": FORMAT, "header": _header_json(header), "cards": [_card_json(c) for c in cards]}
    campaign = "".join(" " if ch in "\u2028\u2029" or not ch.isprintable() else ch for ch in header.campaign)
    title = html.escape(f"{campaign} · batchgen report", quote=True)  # the script sets the exact one
    return "".join(
        (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n',
            '<meta name="referrer" content="no-referrer">\n',
            '<meta name="color-scheme" content="light dark">\n',
            f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n",
            _BODY,
            f'<script type="application/json" id="batchgen-data">{embed_json(data)}</script>\n',
            f"<script>{_JS}</script>\n</body>\n</html>\n",
        )
    )


def _amount(value: Money | None) -> Decimal | None:
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
    amount = _amount(value)
    if amount is None:
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
        "billed": _money(header.billed_usd)[0] if header.billed_jobs else None,
        "billed_jobs": header.billed_jobs,
        "ran": [header.ran_from, header.ran_to] if header.ran_from else None,
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
        "billed": _money(card.billed_usd)[0],
        "finished_at": card.finished_at,
    }


# ---------------------------------------------------------------- a run directory -> data


_MOMENTS = ("submitted_at", "started_at", "completed_at", "downloaded_at")


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
    plan = read_plan(run_dir)
    rows = _read_results(run_dir)
    jobs = plan.get("jobs", [])
    planned = [rows.get(str(job.get("key"))) or {} for job in jobs]  # superseded and older jobs: not shown
    cards = [_card_from(job, row, run_dir) for job, row in zip(jobs, planned, strict=True)]
    counts: dict[str, int] = {}
    for card in cards:
        counts[card.state] = counts.get(card.state, 0) + 1
    billed = [amount for card in cards if (amount := _amount(card.billed_usd)) is not None]
    starts = sorted(t for row in planned if isinstance(t := row.get("submitted_at"), str))
    ends = sorted(
        t for row in planned if isinstance(t := row.get("downloaded_at") or row.get("completed_at"), str)
    )
    # "As of" the run's last recorded moment, not the clock: a rerun that changes nothing writes the
    # same bytes, so a delivery does not commit a new report.html for it.
    moments = sorted(t for row in planned for field in _MOMENTS if isinstance(t := row.get(field), str))
    header = ReportHeader(
        campaign=str(plan.get("name") or run_dir.name),
        generated_at=generated_at or (moments[-1] if moments else "before any submission"),
        counts=counts,
        spend_usd=_spend(cards),
        budget_usd=budget_usd if budget_usd is not None else _manifest_budget(run_dir),
        sandbox=sandbox,
        api_origin=api_origin,
        billed_usd=sum(billed, Decimal(0)),
        billed_jobs=len(billed),
        ran_from=starts[0] if starts else None,
        ran_to=ends[-1] if ends else None,
    )
    return header, cards


def read_plan(run_dir: Path) -> dict[str, Any]:
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
        vars={
            str(k): v if isinstance(v, str | int | float) and not isinstance(v, bool) else _display(v)
            for k, v in (job.get("vars") or {}).items()
        },
        prompt=prompt_of(request),
        aspect_ratio=_str(request.get("aspect_ratio")),
        duration_s=job.get("duration_s"),
        cost_usd=_str(job.get("cost_usd")),
        generation_id=_str(row.get("generation_id")),
        error=_str(row.get("error")),
        sha256=_str(row.get("sha256")),
        model=_str(job.get("model")),
        billed_usd=_str(row.get("billed_cost_usd")),
        finished_at=_str(row.get("completed_at")),
    )


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


def write_report(
    run_dir: Path, header: ReportHeader, cards: Sequence[ReportCard], *, name: str = REPORT_NAME
) -> Path:
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
