"""Picks to a client, end to end: the demo run by the real CLI against the emulator, picks written as
the report exports them (and made in the report in headless Chromium, then exported), `deliver
--picks … --for client` to a fresh repository path; then a manifest edit that makes one pick stale,
refused with a clear message. Also `--only` on `deliver`, a plain
list of key prefixes, and the manifest's `deliver: {for: client}`."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchgen.emulator import Emulator
from tests.browser import Chromium, find_chromium
from tests.e2e.conftest import run_cli
from tests.e2e.test_deliver import demo, edit_coastline, made, run

CLIENT_NS, CLIENT_REPO = "client", "spring"
CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (`apt-get install -y chromium`)"
)
HANDOFF = "handoff/demo"


def without_deliver(manifest: Path) -> None:
    data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    del data["deliver"]
    manifest.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def rows_of(run_dir: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return [row for row in rows if row["planned"]]


def export_picks(rows: list[dict[str, Any]]) -> str:
    """The CSV the report's "Export picks" button writes (data/report/view.js picksCsv): key, title,
    path, name, replica, state, generation_id, then a column per variable."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["key", "title", "path", "name", "replica", "state", "generation_id", "aspect_ratio"])
    fields = ("key", "title", "output_path", "name", "replica", "state", "generation_id", "var.aspect_ratio")
    for row in rows:
        writer.writerow([row[field] for field in fields])
    return out.getvalue()


def api(emu: Emulator) -> list[str]:
    return ["--api-base", emu.base_url, "--api-key", emu.api_key, "--no-progress"]


def secrets_in(emu: Emulator, run_dir: Path) -> tuple[list[bytes], list[bytes]]:
    """What no client file may hold: money (each quote and bill, the spend, the budget, their field
    names), the provider's generation ids, the API's origin and the reference images' URLs."""
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    amounts = {
        row[field] for row in rows for field in ("cost_usd", "billed_cost_usd", "spent_usd") if row[field]
    }
    words = [
        "cost_usd",
        "billed_",
        '"billed":',
        "spent_usd",
        "budget_usd",
        '"cost":',
        '"budget":',
        '"spend":',
        "13.44",
        "$1",
        "$2",
    ]
    words += ["20.00", emu.base_url, "127.0.0.1", "hub.oxen.ai", "data:image", "elau/assets"]
    return [w.encode() for w in (*words, *amounts)], [row["generation_id"].encode() for row in rows]


def leaks(emu: Emulator, run_dir: Path, files: dict[str, Any]) -> list[tuple[str, bytes]]:
    """Every (file, forbidden bytes) found; generation ids only outside the videos (the emulator's
    videos carry theirs in their bytes, as a provider's file may)."""
    forbidden, ids = secrets_in(emu, run_dir)
    found = []
    for path, stored in files.items():
        words = forbidden if path.endswith(".mp4") else forbidden + ids
        found += [(path, word) for word in words if word in stored.data]
    return found


CLIENT_SIDECAR = {"name", "title", "replica", "model", "aspect_ratio", "duration_s", "vars", "file", "sha256"}
TO = f"{CLIENT_NS}/{CLIENT_REPO}@main:handoff/{{name}}"
PICKED = {("coastline", "16:9"), ("mug-morning", "9:16"), ("bloxy-turntable", "1:1")}


async def demo_run(emu: Emulator, tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """The demo run against the emulator without a delivery: its manifest and the plan's 9 rows."""
    manifest = demo(tmp_path)
    without_deliver(manifest)
    done = await run(emu, tmp_path)
    assert done.code == 0, done.stderr
    return manifest, rows_of(tmp_path / "out" / "demo")


async def deliver_picks(emu: Emulator, tmp_path: Path, picks: str, *extra: str) -> Any:
    return await run_cli(
        "deliver",
        "out/demo",
        "--picks",
        picks,
        "--for",
        "client",
        "--to",
        TO,
        *extra,
        *api(emu),
        cwd=tmp_path,
    )


def assert_client_handoff(
    emu: Emulator, run_dir: Path, rows: list[dict[str, Any]], picked: list[dict[str, Any]]
) -> None:
    """The client repository holds exactly the picked videos (byte for byte), their client sidecars, a
    results.csv and a report.html of the picks, and no byte of any file is money, an id or an internal URL."""
    files = emu.repo_files(CLIENT_NS, CLIENT_REPO)
    videos = {f"{HANDOFF}/{r['output_path']}" for r in picked}
    sidecars = {str(Path(v).with_suffix(".json")) for v in videos}
    assert set(files) == videos | sidecars | {f"{HANDOFF}/results.csv", f"{HANDOFF}/report.html"}
    for row in picked:
        stored = files[f"{HANDOFF}/{row['output_path']}"]
        assert stored.sha256 == hashlib.sha256((run_dir / row["output_path"]).read_bytes()).hexdigest()
        sidecar = json.loads(files[str(Path(f"{HANDOFF}/{row['output_path']}").with_suffix(".json"))].data)
        assert set(sidecar) == CLIENT_SIDECAR
        assert sidecar["sha256"] == row["sha256"] and sidecar["title"] == row["title"]
    table = list(csv.DictReader(io.StringIO(files[f"{HANDOFF}/results.csv"].data.decode())))
    assert sorted(r["title"] for r in table) == sorted(r["title"] for r in picked)
    report = files[f"{HANDOFF}/report.html"].data.decode()
    assert all(r["key"] in report for r in picked)
    assert not [r for r in rows if r not in picked and r["key"] in report]  # only the picks have cards
    assert '"money":false' in report
    assert leaks(emu, run_dir, files) == []


async def assert_stale_pick_refused(
    emu: Emulator, tmp_path: Path, manifest: Path, picks: str, coastline: dict[str, Any]
) -> None:
    """An edit changes the picked coastline job; after a rerun the old picks are refused, naming that
    pick and why, and no commit is made."""
    commits = len(made(emu, CLIENT_NS, CLIENT_REPO))
    edit_coastline(manifest)
    assert (await run(emu, tmp_path, "--budget", "30")).code == 0
    stale = await deliver_picks(emu, tmp_path, picks)
    assert stale.code == 2, stale.stderr
    assert f"pick {coastline['key'][:12]} ('coastline · 16:9', {Path(picks).name} line " in stale.stderr
    assert "no longer in the current plan: the manifest changed it since this pick was made" in stale.stderr
    assert "a pick is not a done result of the current plan, nothing was sent" in stale.stderr
    assert len(made(emu, CLIENT_NS, CLIENT_REPO)) == commits


async def test_picks_go_to_a_client_with_nothing_internal_and_a_stale_pick_is_refused(
    emulator: Any, tmp_path: Path
) -> None:
    """3 of the demo's 9 results picked (written as the report exports them) reach a fresh client
    path: exactly those videos, their client sidecars, a results.csv and a report.html, with no cost,
    budget, id or internal URL in any byte. After an edit changes one picked job, the old picks are
    refused, naming that pick and why, and nothing is sent."""
    emu = await emulator()
    manifest, rows = await demo_run(emu, tmp_path)
    picked = [r for r in rows if (r["name"], r["var.aspect_ratio"]) in PICKED]
    (tmp_path / "picks.csv").write_text(export_picks(picked), encoding="utf-8")
    sent = await deliver_picks(emu, tmp_path, "picks.csv", "--create")
    assert sent.code == 0, sent.stderr
    assert_client_handoff(emu, tmp_path / "out" / "demo", rows, picked)
    coastline = next(r for r in picked if r["name"] == "coastline")
    await assert_stale_pick_refused(emu, tmp_path, manifest, "picks.csv", coastline)


@needs_chromium
@pytest.mark.timeout(150)
async def test_picks_made_in_the_report_in_chromium_are_delivered_to_a_client(
    emulator: Any, tmp_path: Path
) -> None:
    """The same hand-off with the picks made in the run's own report.html in headless Chromium: Pick
    boxes clicked, Export picks downloaded (a real Blob download), that file given to `deliver`."""
    emu = await emulator()
    manifest, rows = await demo_run(emu, tmp_path)
    picked = [r for r in rows if (r["name"], r["var.aspect_ratio"]) in PICKED]
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    async with Chromium.launch(CHROMIUM) as browser:
        page = await browser.new_page(width=1280, height=900)
        await page.goto((tmp_path / "out" / "demo" / "report.html").as_uri())
        await page.wait_for("window.batchgenReport")
        for row in picked:
            await page.evaluate(f"document.querySelector('[data-key=\"{row['key']}\"] .pick-box').click()")
        assert await page.evaluate('document.getElementById("pick-count").textContent') == "3 picked"
        await browser.send(
            "Browser.setDownloadBehavior",
            {"behavior": "allow", "downloadPath": str(downloads), "eventsEnabled": True},
        )
        begun = browser.expect("Browser.downloadWillBegin")
        finished = browser.expect(
            "Browser.downloadProgress", predicate=lambda p: p.get("state") == "completed"
        )
        await page.evaluate('document.getElementById("export").click()')
        async with asyncio.timeout(15):
            name = (await begun)["suggestedFilename"]
            await finished
        assert page.errors() == []
    picks = str(downloads / name)
    sent = await deliver_picks(emu, tmp_path, picks, "--create")
    assert sent.code == 0, sent.stderr
    assert_client_handoff(emu, tmp_path / "out" / "demo", rows, picked)
    coastline = next(r for r in picked if r["name"] == "coastline")
    await assert_stale_pick_refused(emu, tmp_path, manifest, picks, coastline)


async def test_deliver_only_and_a_list_of_key_prefixes_narrow_the_team_mirror(
    emulator: Any, tmp_path: Path
) -> None:
    """`--only aspect_ratio=9:16` sends the 3 portrait results with their full sidecars and the run's
    files; a hand-written list (comments, 12-character prefixes) sends just its 2 results; a prefix
    that names no job is refused."""
    emu = await emulator()
    without_deliver(demo(tmp_path))
    assert (await run(emu, tmp_path)).code == 0
    rows = rows_of(tmp_path / "out" / "demo")
    only = await run_cli(
        "deliver",
        "out/demo",
        "--only",
        "aspect_ratio=9:16",
        "--to",
        "team/portrait:p/{name}",
        "--create",
        *api(emu),
        cwd=tmp_path,
    )
    assert only.code == 0, only.stderr
    files = emu.repo_files("team", "portrait")
    portrait = sorted(f"p/demo/{r['output_path']}" for r in rows if r["var.aspect_ratio"] == "9:16")
    assert sorted(p for p in files if p.endswith(".mp4")) == portrait
    assert {"p/demo/results.csv", "p/demo/results.jsonl", "p/demo/report.html"} <= set(files) and len(
        files
    ) == 9
    assert "cost_usd" in files[portrait[0].replace(".mp4", ".json")].data.decode()  # the team's full sidecar
    found = {word for _, word in leaks(emu, tmp_path / "out" / "demo", files)}
    assert {b"cost_usd", b"hub.oxen.ai", b'"budget":', b"13.44"} <= found, (
        found
    )  # the same grep catches the team's mirror

    two = rows[:2]
    listing = "# the two we liked\n" + "".join(f"{r['key'][:12]}  # {r['title']}\n" for r in two) + "\n"
    (tmp_path / "keys.txt").write_text(listing, encoding="utf-8")
    listed = await run_cli(
        "deliver",
        "out/demo",
        "--picks",
        "keys.txt",
        "--to",
        "team/listed:l/{name}",
        "--create",
        *api(emu),
        cwd=tmp_path,
    )
    assert listed.code == 0, listed.stderr
    mp4 = sorted(p for p in emu.repo_files("team", "listed") if p.endswith(".mp4"))
    assert mp4 == sorted(f"l/demo/{r['output_path']}" for r in two)

    (tmp_path / "bad.txt").write_text("0000000000ff\n", encoding="utf-8")
    bad = await run_cli(
        "deliver", "out/demo", "--picks", "bad.txt", "--to", "team/listed:l/{name}", *api(emu), cwd=tmp_path
    )
    assert bad.code == 2 and "pick 0000000000ff (bad.txt line 1): no job of this run directory" in bad.stderr


async def test_a_manifest_deliver_for_client_sends_the_client_files_once_the_run_is_over(
    emulator: Any, tmp_path: Path
) -> None:
    """`deliver: {for: client}`: the run sends its 9 results with client sidecars, a client results.csv
    and report.html, never results.jsonl, and nothing internal."""
    emu = await emulator()
    demo(tmp_path, create=True, **{"for": "client"})
    result = await run(emu, tmp_path)
    assert result.code == 0, result.stderr
    files = emu.repo_files("team", "campaigns")
    assert len([p for p in files if p.endswith(".mp4")]) == 9 and len(files) == 20
    assert "campaigns/demo/results.jsonl" not in files
    assert leaks(emu, tmp_path / "out" / "demo", files) == []
    assert re.search(r'"money":\s*false', files["campaigns/demo/report.html"].data.decode())
