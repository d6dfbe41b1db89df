"""report.html as an art director uses it, in headless Chromium at 1280x900 and on a 390x844 phone:
a campaign run in the sandbox (3 products with their taglines, a constant brand, 16:9 and 9:16, two
takes, `report: {title, group_by}`), its constants said once, one filter for product and tagline,
tiles of each video's shape, grouping, filters folded away on a phone, failed jobs not pickable, a
file that cannot be decoded saying so, and a view shared by its URL. Screenshots are kept (see the
`artifacts` fixture) and their paths printed."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from batchgen.results.report_data import load_report
from batchgen.results.report_html import write_report
from tests.browser import Chromium, Page, artifacts_folder
from tests.e2e.conftest import clean_env, run_cli
from tests.test_report_html import (
    CHROMIUM,
    choose,
    copy_with_one_failure,
    needs_chromium,
    open_report,
    results_of,
    visible,
)

MANIFEST = """\
    version: 1
    name: spring
    model: kling-video-o3-pro-reference-to-video
    defaults: {duration: 5, generate_audio: false}
    vars: {brand: "Meadow & Co."}
    rows: products.csv
    jobs:
      - name: hero
        prompt: "A {product} on {scene}, slow push-in. End on the {brand} logo: {tagline}"
        aspect_ratio: "{aspect_ratio}"
        matrix: {aspect_ratio: ["16:9", "9:16"]}
        repeat: 2
    output: {pattern: "{product}/{aspect_ratio}-{replica}-{key}"}
    report: {title: "{product} · {aspect_ratio}", group_by: product}
    """
PRODUCTS = """\
product,tagline,scene
mug,Spring into slow mornings,a sunlit kitchen counter
tote,Carry the season with you,a park bench
sneaker,Step into spring,wet city pavement
"""
DESKTOP = (1280, 900)
PHONE = (390, 844)


@pytest.fixture(scope="module")
def campaign_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`batchgen run spring.yaml --sandbox` (the real CLI, once per module): 12 jobs, all done."""
    folder = tmp_path_factory.mktemp("campaign")
    (folder / "spring.yaml").write_text(textwrap.dedent(MANIFEST), encoding="utf-8")
    (folder / "products.csv").write_text(PRODUCTS, encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "batchgen",
        "run",
        "spring.yaml",
        "--sandbox",
        "-o",
        "out",
        "--no-progress",
    ]
    done = subprocess.run(
        command, cwd=folder, env=clean_env(), capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, done.stderr
    return folder / "out" / "spring.sandbox"


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go (each test prints the path): tests.browser.artifacts_folder."""
    return artifacts_folder(tmp_path_factory.getbasetemp())


@pytest.fixture
async def browser() -> AsyncIterator[Chromium]:
    """A fresh headless Chromium (its own profile: no picks stored), stopped whatever happens."""
    async with Chromium.launch(CHROMIUM) as chromium:
        yield chromium


def titles_of(run_dir: Path) -> list[str]:
    return [row["title"] for row in results_of(run_dir)]


async def open_page(browser: Chromium, url: str, size: tuple[int, int]) -> Page:
    page = await browser.new_page(width=size[0], height=size[1], mobile=size == PHONE)
    await page.goto(url)
    await page.wait_for("window.batchgenReport")
    return page


async def tile(page: Page, key: str) -> dict[str, float]:
    """The size of a card's media tile, once its <video> is mounted (it is while the card is near)."""
    selector = json.dumps(f'[data-key="{key}"] .media')
    await page.wait_for(f"document.querySelector({selector}).querySelector('video')")
    size: dict[str, float] = await page.evaluate(
        f"(r => ({{width: r.width, height: r.height}}))(document.querySelector({selector}).getBoundingClientRect())"
    )
    return size


async def shoot(page: Page, folder: Path, name: str) -> None:
    await page.wait_for(
        '[...document.querySelectorAll("#grid video")].every(v => v.readyState >= 2 || v.error)', limit_s=20
    )
    print(f"\nscreenshot: {await page.screenshot(folder / name)}")


@needs_chromium
@pytest.mark.timeout(90)
async def test_the_titles_are_the_manifests_in_status_results_and_cards(campaign_run: Path) -> None:
    """`report.title` is the readable name everywhere: results.csv's title, `status` and the cards."""
    titles = titles_of(campaign_run)
    assert titles[:4] == [
        "mug · 16:9 · take 1",
        "mug · 16:9 · take 2",
        "mug · 9:16 · take 1",
        "mug · 9:16 · take 2",
    ]
    with (campaign_run / "results.csv").open(encoding="utf-8", newline="") as file:
        assert [row["title"] for row in csv.DictReader(file)] == titles
    status = await run_cli("status", str(campaign_run), "--json", cwd=campaign_run, env=clean_env())
    assert status.code == 0, status.stderr
    assert [json.loads(line)["title"] for line in status.stdout.splitlines()] == titles
    page = data_of_report(campaign_run)
    assert [c["heading"] for c in page["cards"]] == titles  # the manifest's own words, whole


def data_of_report(run_dir: Path) -> dict[str, Any]:
    text = (run_dir / "report.html").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text.split('id="batchgen-data">')[1].split("</script>")[0])
    return data


@needs_chromium
@pytest.mark.timeout(90)
async def test_on_a_laptop_constants_once_one_filter_per_thing_tiles_of_each_shape_and_groups(
    campaign_run: Path, browser: Chromium, artifacts: Path
) -> None:
    """1280x900: brand and the job name once in the header, not on the cards; one select for product
    (tagline and scene follow it) and one for aspect ratio; a 9:16 tile taller than wide and a 16:9
    one wider; grouped by product (the manifest's group_by) with a heading per group."""
    page = await open_page(browser, (campaign_run / "report.html").as_uri(), DESKTOP)
    rows = results_of(campaign_run)
    found = await page.evaluate("""(() => ({
        constants: [...document.querySelectorAll("#constants li")].map(li => li.textContent),
        selects: [...document.querySelectorAll("#var-filters label")].map(l => l.firstChild.textContent.trim()),
        cardVars: [...document.querySelectorAll("#grid .card:first-of-type .vars .k")].map(k => k.textContent.trim()),
        groups: [...document.querySelectorAll("#grid .group-head")].map(h => h.textContent),
        group: document.getElementById("group-by").value,
        controlsOpen: document.getElementById("controls").open,
    }))()""")
    assert found["constants"] == ["job hero", "brand Meadow & Co."]
    assert found["selects"] == ["product · tagline · scene", "aspect_ratio"]
    assert "brand" not in found["cardVars"] and "product" in found["cardVars"]
    assert found["group"] == "product" and found["controlsOpen"]
    assert found["groups"] == [
        "product: mug · Spring into slow mornings · a sunlit kitchen counter (4)",
        "product: tote · Carry the season with you · a park bench (4)",
        "product: sneaker · Step into spring · wet city pavement (4)",
    ]
    assert await visible(page) == [row["key"] for row in rows]  # manifest order already goes by product
    wide, tall = rows[0], rows[2]
    assert (wide["var.aspect_ratio"], tall["var.aspect_ratio"]) == ("16:9", "9:16")
    wide_tile, tall_tile = await tile(page, wide["key"]), await tile(page, tall["key"])
    assert tall_tile["height"] > 1.5 * tall_tile["width"], tall_tile
    assert wide_tile["width"] > 1.5 * wide_tile["height"], wide_tile
    assert abs(wide_tile["width"] - tall_tile["width"]) < 2  # one column width: the shape is the height
    await choose(page, 'select.var-filter[data-var="product"]', "tote")
    assert await visible(page) == [row["key"] for row in rows if row["product"] == "tote"]
    await choose(page, "#group-by", "aspect_ratio")
    heads = await page.evaluate('[...document.querySelectorAll("#grid .group-head")].map(h => h.textContent)')
    assert heads == ["aspect_ratio: 16:9 (2)", "aspect_ratio: 9:16 (2)"]
    await page.evaluate("window.scrollTo(0, 0)")
    await shoot(page, artifacts, "report-campaign-laptop.png")
    assert page.errors() == []


@needs_chromium
@pytest.mark.timeout(90)
async def test_on_a_phone_the_first_screen_shows_the_first_video(
    campaign_run: Path, browser: Chromium, artifacts: Path
) -> None:
    """390x844: the filters are folded under one line, so the first card's video is on the first
    screen, most of it; opening the line shows every control; nothing scrolls sideways."""
    page = await open_page(browser, (campaign_run / "report.html").as_uri(), PHONE)
    first = results_of(campaign_run)[0]["key"]
    await tile(page, first)
    layout = await page.evaluate(f"""(() => {{
        const video = document.querySelector('[data-key="{first}"] video').getBoundingClientRect();
        return {{top: video.top, bottom: video.bottom, height: innerHeight,
                 open: document.getElementById("controls").open,
                 search: document.getElementById("search").checkVisibility(),
                 scroll: document.documentElement.scrollWidth, inner: innerWidth}};
    }})()""")
    assert not layout["open"] and not layout["search"], layout
    assert 0 <= layout["top"] < layout["height"] / 2 and layout["bottom"] <= layout["height"], layout
    assert layout["scroll"] <= layout["inner"], layout
    await shoot(page, artifacts, "report-campaign-phone.png")
    await page.evaluate('document.querySelector("#controls summary").click()')
    assert await page.evaluate('document.getElementById("search").checkVisibility()')
    assert page.errors() == []


@needs_chromium
@pytest.mark.timeout(90)
async def test_a_shared_url_restores_the_filters_grouping_sort_and_picks(
    campaign_run: Path, tmp_path: Path
) -> None:
    """Filters, grouping, sort and picks go into the URL's hash as they change; the URL opened in
    another browser (no stored picks) shows the same cards, in the same order, with the same picks."""
    run_dir = tmp_path / "spring"
    shutil.copytree(campaign_run, run_dir)
    rows = results_of(run_dir)
    picked = [rows[6]["key"], rows[7]["key"]]
    async with Chromium.launch(CHROMIUM) as first:
        page = await open_page(first, (run_dir / "report.html").as_uri(), DESKTOP)
        await choose(page, 'select.var-filter[data-var="aspect_ratio"]', "9:16")
        await choose(page, "#group-by", "")
        await choose(page, "#sort", "name")
        for key in picked:
            await page.evaluate(f"document.querySelector('[data-key=\"{key}\"] .pick-box').click()")
        await page.evaluate(
            '(s => { s.value = "spring"; s.dispatchEvent(new Event("input")); })(document.getElementById("search"))'
        )
        await page.wait_for('location.hash.includes("q=spring")')
        url = await page.evaluate("location.href")
        shown = await visible(page)
    assert "var.aspect_ratio=9%3A16" in url and "group=&" in url and "sort=name" in url
    chosen = [row for row in rows if row["var.aspect_ratio"] == "9:16" and row["product"] != "tote"]
    assert shown == [
        row["key"] for row in sorted(chosen, key=lambda r: (r["replica"], r["index"]))
    ]  # by name
    async with Chromium.launch(CHROMIUM) as second:
        page = await open_page(second, url, PHONE)
        restored = await page.evaluate("""(() => ({
            ratio: document.querySelector('select.var-filter[data-var="aspect_ratio"]').value,
            group: document.getElementById("group-by").value, sort: document.getElementById("sort").value,
            q: document.getElementById("search").value, picks: batchgenReport.picks()}))()""")
        assert restored == {"ratio": "9:16", "group": "", "sort": "name", "q": "spring", "picks": picked}
        assert await visible(page) == shown
        assert await page.evaluate("location.href") == url  # opening it wrote nothing new
        assert page.errors() == []


@needs_chromium
@pytest.mark.timeout(90)
async def test_failed_jobs_cannot_be_picked_and_a_file_that_cannot_be_decoded_says_so(
    campaign_run: Path, browser: Chromium, tmp_path: Path, artifacts: Path
) -> None:
    """A failed card has no Pick box and no price, and a hash naming it picks nothing; a done card
    whose file is not a video says it cannot be played, with a link to the file, instead of an
    empty player."""
    run_dir, failed = copy_with_one_failure(campaign_run, tmp_path, index=1)
    rows = results_of(run_dir)
    damaged = rows[3]
    (run_dir / damaged["output_path"]).write_bytes(b"this is not an mp4 file at all " * 64)
    page = await browser.new_page(width=DESKTOP[0], height=DESKTOP[1])
    path = await open_report(page, run_dir)
    card = f'[data-key="{failed}"]'
    found = await page.evaluate(f"""(() => ({{
        box: !!document.querySelector('{card} .pick-box'), cost: !!document.querySelector('{card} .cost'),
        error: document.querySelector('{card} .error').textContent}}))()""")
    assert found == {"box": False, "cost": False, "error": "generation failed: <b>content policy</b>"}
    note = await page.wait_for(
        f"(n => n && n.textContent)(document.querySelector('[data-key=\"{damaged['key']}\"] .nofile.broken'))"
    )
    assert note.startswith("This video cannot be played here: ") and note.endswith("Open the file"), note
    link = await page.evaluate(
        f"document.querySelector('[data-key=\"{damaged['key']}\"] .nofile.broken a').href"
    )
    assert link.endswith(damaged["output_path"])
    await shoot(page, artifacts, "report-failed-and-undecodable.png")

    page = await open_page(browser, path.as_uri() + f"#picks={failed[:12]},{rows[0]['key'][:12]}", DESKTOP)
    assert await page.evaluate("batchgenReport.picks()") == [rows[0]["key"]]
    exported = list(csv.DictReader(io.StringIO(await page.evaluate("batchgenReport.csv()"))))
    assert [(r["key"], r["path"], r["brand"]) for r in exported] == [
        (rows[0]["key"], rows[0]["output_path"], "Meadow & Co.")
    ]
    assert page.errors() == []


@needs_chromium
@pytest.mark.timeout(90)
async def test_a_report_without_money_shows_no_amount_and_no_empty_header_lines(
    campaign_run: Path, browser: Chromium, tmp_path: Path
) -> None:
    """show_money off (a client's report): no `$`, budget or billed figure anywhere on the page and no
    cost sort; and a header line with nothing to say (no constants, no spend) takes no room."""
    run_dir = tmp_path / "spring"
    shutil.copytree(campaign_run, run_dir)
    header, cards = load_report(run_dir, show_money=False)
    plain = [replace(c, vars={"product": c.vars["product"]}, name=f"spot-{c.index}") for c in cards]
    for name, shown in (("with-constants.html", cards), ("without-constants.html", plain)):
        page = await open_page(browser, write_report(run_dir, header, shown, name=name).as_uri(), DESKTOP)
        found = await page.evaluate("""(() => ({
            text: document.body.innerText, spend: document.getElementById("spend").checkVisibility(),
            constants: document.getElementById("constants").checkVisibility(),
            sorts: [...document.getElementById("sort").options].map(o => o.value)}))()""")
        assert not re.search(r"\$|budget|billed|1\.12", found["text"]), found["text"]
        assert not found["spend"] and found["sorts"] == ["manifest", "name", "state"]
        assert found["constants"] is (shown is cards)
        assert page.errors() == []
