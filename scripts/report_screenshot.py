#!/usr/bin/env python3
"""docs/report.png: a screenshot of the demo run's report.html in headless Chromium at laptop size.

    python scripts/report_screenshot.py                  # sandbox run of jobs/demo.yaml in a temp dir
    python scripts/report_screenshot.py --run-dir outputs/demo --out /tmp/report.png

A fresh run's own report.html is shown as the run wrote it; an existing --run-dir gets its report
made again first (`batchgen report RUN_DIR`).

Drives Chromium with the tests' CDP helper (tests/browser.py, imported, not copied).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from batchgen.results.review import refresh  # noqa: E402
from tests.browser import Chromium, find_chromium  # noqa: E402
from tests.e2e.conftest import clean_env  # noqa: E402


def sandbox_demo_run(out: Path) -> Path:
    """`batchgen run jobs/demo.yaml --sandbox -o OUT`: the built-in emulator, nothing paid."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "batchgen",
            "run",
            "jobs/demo.yaml",
            "--sandbox",
            "-o",
            str(out),
            "--no-progress",
        ],
        cwd=REPO,
        env=clean_env(),
        check=True,
        timeout=120,
    )
    return out / "demo.sandbox"


async def capture(report: Path, out: Path, width: int, height: int) -> None:
    async with Chromium.launch() as browser:
        page = await browser.new_page(width=width, height=height)
        await page.goto(report.as_uri())
        await page.wait_for("window.batchgenReport")
        # every video in view shows its first frame before the shot
        await page.wait_for(
            '[...document.querySelectorAll("#grid video")].every(v => v.readyState >= 2 || v.error)',
            limit_s=20,
        )
        await page.screenshot(out)
        if page.errors():
            raise SystemExit(f"the page reported errors: {page.errors()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run-dir", type=Path, help="an existing run directory (default: a fresh sandbox demo run)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "report.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    args = parser.parse_args()
    if find_chromium() is None:
        print("no chromium binary: apt-get install -y chromium (or set $CHROMIUM)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="batchgen-report-") as tmp:
        report = refresh(args.run_dir) if args.run_dir else sandbox_demo_run(Path(tmp)) / "report.html"
        asyncio.run(capture(report, args.out.resolve(), args.width, args.height))
    print(f"wrote {args.out} ({args.width}x{args.height}) from {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
