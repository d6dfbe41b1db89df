"""What a client receives beside the picked videos (`deliver --for client`): a sidecar, a results
table and a report, each made from the run directory with nothing a client should not see.

Left out everywhere: costs, quotes, billed amounts, spend and budget; generation ids; the API's origin
and any URL or data URI (reference images travel as URLs in requests and sometimes in variables);
the request itself; results of jobs not chosen, superseded takes and failures.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from batchgen.results.report import FORMULA_STARTS
from batchgen.results.report_data import load_report
from batchgen.results.report_html import render_report

__all__ = ["CLIENT_CSV_FIELDS", "client_csv", "client_report", "client_sidecar", "client_vars"]

CLIENT_CSV_FIELDS = ("title", "name", "replica", "path", "model", "aspect_ratio", "duration_s", "sha256")
_URLISH = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://|\bdata:", re.IGNORECASE)


def client_vars(variables: Mapping[str, Any]) -> dict[str, Any]:
    """The job's variables without those holding a URL or a data URI (reference images)."""
    return {
        str(name): value
        for name, value in variables.items()
        if not _URLISH.search(json.dumps(value, ensure_ascii=False, default=str))
    }


def _facts(job: Mapping[str, Any], sha256: str) -> dict[str, Any]:
    request, variables = job.get("request"), job.get("vars")
    request = request if isinstance(request, Mapping) else {}
    variables = variables if isinstance(variables, Mapping) else {}
    return {
        "name": job.get("name"),
        "title": job.get("title") or job.get("name"),
        "replica": job.get("replica"),
        "model": job.get("model"),
        "aspect_ratio": request.get("aspect_ratio"),
        "duration_s": job.get("duration_s"),
        "vars": client_vars(variables),
        "file": PurePosixPath(str(job.get("output_path", ""))).name,
        "sha256": sha256,
    }


def client_sidecar(job: Mapping[str, Any], sha256: str) -> bytes:
    """A result's sidecar for a client: what it is (name, title, variables, model, aspect ratio,
    duration) and its file's sha256. `job` is the job's entry in plan.json."""
    return (json.dumps(_facts(job, sha256), ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()


def client_csv(jobs: list[tuple[Mapping[str, Any], str]]) -> bytes:
    """results.csv for a client: one row per delivered result, (plan entry, sha256) each, with a
    column per variable; no money, no ids, no request."""
    rows = []
    names: dict[str, None] = {}
    for job, sha256 in jobs:
        facts = _facts(job, sha256)
        row = {field: facts.get(field) for field in CLIENT_CSV_FIELDS if field != "path"}
        row["path"] = f"videos/{job.get('output_path', '')}"
        for name, value in facts["vars"].items():
            names.setdefault(f"var.{name}")
            row[f"var.{name}"] = value if isinstance(value, str | int | float) else json.dumps(value)
        rows.append(row)
    out = io.StringIO()
    # CRLF, as the run's results.csv: with a bare LF, a CR inside a value would end the row there
    writer = csv.DictWriter(out, [*CLIENT_CSV_FIELDS, *names], lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return out.getvalue().encode()


def _cell(value: Any) -> Any:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text  # not run as a spreadsheet formula


def client_report(run_dir: Path, keys: Collection[str]) -> bytes:
    """The contact sheet of the chosen results, without money, ids or the API's origin."""
    header, cards = load_report(run_dir, show_money=False)
    chosen = [
        replace(
            card,
            vars=client_vars(card.vars),
            cost_usd=None,
            billed_usd=None,
            generation_id=None,
            error=None,
            kept_path=None,
        )
        for card in cards
        if card.key in keys
    ]
    header = replace(
        header,
        counts={"done": len(chosen)},
        spend_usd=None,
        spend_note=None,
        budget_usd=None,
        sandbox=False,
        api_origin=None,
    )
    return render_report(header, chosen).encode()
