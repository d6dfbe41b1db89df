"""Money figures that match the invoice: every generation a run directory paid for, superseded ones
included, counts in the budget and in every figure (the progress line, `plan`, `ls`, `status`,
`run --json`, results.csv, the report), and a price too low to trust stops a budgeted run before
anything is sent."""

from __future__ import annotations

import csv
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchgen.emulator import Emulator
from tests.e2e.conftest import api_args, run_cli
from tests.e2e.test_run import MODEL, enqueues

PRODUCTS = {
    "mug": "Morning ritual",
    "lamp": "Light that lasts",
    "vase": "Fresh every day",
    "bowl": "Made to share",
}


def campaign(root: Path, **taglines: str) -> Path:
    """4 products (a CSV row each) x 3 aspect ratios = 12 jobs at $1.12; paths do not hold the key, so
    an edited row's new jobs take the paths of its old ones."""
    rows = {**PRODUCTS, **taglines}
    (root / "products.csv").write_text("product,tagline\n" + "".join(f"{p},{t}\n" for p, t in rows.items()))
    manifest = {
        "version": 1,
        "name": "campaign",
        "model": MODEL,
        "defaults": {"duration": 5},
        "rows": "products.csv",
        "jobs": [
            {
                "name": "hero",
                "prompt": "A {product} on an oak table. {tagline}",
                "aspect_ratio": "{aspect_ratio}",
                "matrix": {"aspect_ratio": ["16:9", "9:16", "1:1"]},
            }
        ],
        "output": {"pattern": "{product}/{name}-{aspect_ratio}.mp4"},
    }
    path = root / "campaign.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def billed_by_emulator(emu: Emulator) -> Decimal:
    """What the emulator charged: the sum of every generation's cost (failed ones cost nothing)."""
    return sum((gen.cost for gen in emu.generations() if gen.cost is not None), Decimal(0))


def report_header(run_dir: Path) -> dict[str, Any]:
    page = (run_dir / "report.html").read_text()
    found = re.search(r'<script type="application/json" id="batchgen-data">(.*?)</script>', page, re.S)
    assert found is not None
    return dict(json.loads(found.group(1))["header"])


def keys_of(emu: Emulator) -> list[str]:
    return ["--api-base", emu.base_url, "--api-key", emu.api_key]


async def test_an_edited_row_under_a_budget_stops_at_the_budget_and_every_figure_gives_the_invoice(
    emulator: Any, tmp_path: Path
) -> None:
    """12 jobs paid ($13.44); one CSV row edited: its 3 jobs are new, their 3 old results superseded.
    A $15 budget admits 1 new job ($14.56 with the superseded ones), not 3 ($16.80). `plan`, the
    progress line, `run --json`, `ls`, `status`, results.csv and the report all say $14.56 for 13
    generations, what the emulator billed, and say $3.36 of it is for jobs no longer in the plan."""
    emu = await emulator()
    manifest = campaign(tmp_path)
    first = await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert first.code == 0, first.stderr
    assert "$13.44 spent by this run directory (12 generations, as billed)" in first.stderr
    run_dir = tmp_path / "out" / "campaign"

    campaign(tmp_path, lamp="Light that lasts now in brass")
    planned = await run_cli("plan", str(manifest), "-o", "out", "--budget", "15", *keys_of(emu), cwd=tmp_path)
    assert planned.code == 0, planned.stderr
    assert (
        "  $13.44 spent by this run directory (12 generations, as billed; $3.36 of it for jobs no longer in "
        "the plan)\n" in planned.stdout
    )
    assert (
        "budget $15.00 stops after 1 of 3 jobs to run: $14.56 spent by then (of which $13.44 already spent "
        "by this run directory, $3.36 of it for jobs no longer in the plan); the next, #4 hero · lamp · 9:16, would bring "
        "it to $15.68" in planned.stdout
    )

    with_progress = [arg for arg in api_args(emu, "--budget", "15") if arg != "--no-progress"]
    second = await run_cli("run", str(manifest), "-o", "out", "--json", *with_progress, cwd=tmp_path)
    assert second.code == 1 and "the budget was reached" in second.stderr
    assert enqueues(emu) == 13  # 12, then 1 of the 3 new ones: the budget counted the superseded 3
    invoice = billed_by_emulator(emu)
    assert invoice == Decimal("14.56")
    figure = "$14.56 spent by this run directory (13 generations, as billed; $3.36 of it for jobs no longer in the plan)"
    assert figure in second.stderr
    progress = [line for line in second.stderr.splitlines() if line.startswith("[")]
    assert progress and progress[-1].endswith(
        "$14.56 spent (run directory; budget $15.00) · stopping (budget)"
    )
    summary = json.loads(second.stdout)
    assert summary["reason"] == "budget" and Decimal(summary["committed_usd"]) == invoice
    assert summary["spend"]["generations"] == 13 and Decimal(summary["spend"]["outside_plan_usd"]) == Decimal(
        "3.36"
    )

    after = await run_cli("plan", str(manifest), "-o", "out", *keys_of(emu), cwd=tmp_path)
    assert f"  {figure}\n" in after.stdout

    status = await run_cli("status", str(run_dir), cwd=tmp_path)
    assert f"  {figure}\n" in status.stdout
    per_job = [
        json.loads(line)
        for line in (await run_cli("status", str(run_dir), "--json", cwd=tmp_path)).stdout.splitlines()
    ]
    assert sum(Decimal(job["spent_usd"]) for job in per_job) == invoice
    assert sum(job["generations"] for job in per_job) == 13

    listed = await run_cli("ls", "out", "--json", cwd=tmp_path)
    (run,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert Decimal(run["spent_usd"]) == invoice and run["spend"]["generations"] == 13
    table = (await run_cli("ls", "out", cwd=tmp_path)).stdout.splitlines()
    assert table[0].split()[5] == "SPENT" and " $14.56 " in table[1]

    with (run_dir / "results.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert sum(Decimal(row["spent_usd"]) for row in rows) == invoice
    assert sum(Decimal(row["billed_cost_usd"] or 0) for row in rows) == invoice
    earlier = [row for row in rows if row["planned"] == "false"]
    assert len(rows) == 15 and len(earlier) == 3  # the plan's 12, then the 3 superseded lamp jobs
    for row in earlier:
        assert row["state"] == "superseded" and row["output_path"].startswith(
            f"superseded/{row['key'][:12]}/lamp/"
        )
        assert (run_dir / row["output_path"]).is_file()
    pending = [row for row in rows if row["state"] == "pending"]
    assert len(pending) == 2 and all(
        row["spent_usd"] == "0" and row["cost_usd"] == "1.120" for row in pending
    )

    header = report_header(run_dir)
    assert (header["spend"], header["spend_n"]) == ("$14.56", 14.56)
    assert header["spend_note"] == (
        "13 generations, as billed; $3.36 of it for jobs no longer in the plan, which have no card"
    )
    refreshed = await run_cli("report", str(run_dir), cwd=tmp_path)
    assert refreshed.code == 0 and report_header(run_dir)["spend"] == "$14.56"

    sidecars = [p for p in run_dir.rglob("*.json") if p.with_suffix(".mp4").is_file()]
    assert len(sidecars) == 13  # the manifest is named by its file name, never by where it lives here
    assert {json.loads(p.read_text())["manifest"].split(":")[0] for p in sidecars} == {"campaign.yaml"}
    assert not any(str(tmp_path) in p.read_text() for p in sidecars)


@pytest.mark.parametrize("price", [0, 1e-12])
async def test_a_price_too_low_to_trust_refuses_a_budget_before_anything_is_sent(
    emulator: Any, tmp_path: Path, price: float
) -> None:
    """The registry answering a price of 0 (or 1e-12) per second: a budget would be "enforced" against
    $0.00 quotes and let every job through. With a budget, `run` is exit 2 naming the model and the
    price, nothing sent, and `plan` says the budget cannot be enforced; without one, the run goes on,
    warned once."""
    emu = await emulator()
    spec = emu.state.catalog.get(MODEL)
    assert spec is not None
    emu.override_model(
        MODEL, {**spec.public, "pricing": {"method": "per_video_output_second", "cost_per_second": price}}
    )
    manifest = campaign(tmp_path)
    shown = "$0" if price == 0 else "$0.000000000001"
    refused = await run_cli("run", str(manifest), "-o", "out", *api_args(emu, "--budget", "15"), cwd=tmp_path)
    assert refused.code == 2, refused.stderr
    assert f"{MODEL} is priced at {shown} per second" in refused.stderr
    assert "a budget of $15 cannot be enforced" in refused.stderr
    assert enqueues(emu) == 0 and not (tmp_path / "out" / "campaign" / "videos").exists()
    planned = await run_cli("plan", str(manifest), "--budget", "15", *keys_of(emu), cwd=tmp_path)
    assert planned.code == 0
    assert f"budget $15.00 cannot be enforced: {MODEL} is priced at {shown} per second" in planned.stdout

    unbudgeted = await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert unbudgeted.code == 0, unbudgeted.stderr
    assert unbudgeted.stderr.count(f"{MODEL} is priced at {shown} per second") == 1
    assert enqueues(emu) == 12
