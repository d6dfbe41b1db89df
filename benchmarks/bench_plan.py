"""Benchmark: load + plan + validate a manifest that expands to 100,000 jobs (target: < 3 s).

Run: python benchmarks/bench_plan.py [--jobs-per-spec 50000] [--runs 3] [--profile]
Prints the figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

from batchgen.manifest import load_manifest
from batchgen.planning import build_plan
from batchgen.registry import SnapshotCatalog

PRODUCTS = 25
RATIOS = ("16:9", "9:16")


def tiny_png() -> bytes:
    """A valid 2x2 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + b"\xff\x00\x00" * 2 + b"\x00" + b"\x00\xff\x00" * 2)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def write_manifest(folder: Path, jobs_per_spec: int) -> Path:
    """Two job specs (a prompt job and a multi_prompt job), each products x ratios x seeds."""
    seeds = max(1, jobs_per_spec // (PRODUCTS * len(RATIOS)))
    (folder / "logo.png").write_bytes(tiny_png())
    assets = "\n".join(
        f"  p{i}: https://hub.oxen.ai/api/repos/acme/assets/file/main/p{i}.png" for i in range(PRODUCTS)
    )
    products = ", ".join(f"p{i}" for i in range(PRODUCTS))
    text = f"""\
version: 1
name: bench
model: kling-video-o3-pro-reference-to-video
defaults:
  generate_audio: false
  negative_prompt: blur, distort, and low quality
assets:
  logo: logo.png
{assets}
vars:
  brand: Acme
matrix:
  product: [{products}]
  aspect_ratio: [{", ".join(f'"{r}"' for r in RATIOS)}]
  seed: [{", ".join(str(s) for s in range(seeds))}]
jobs:
  - name: hero
    prompt: "@Image1 on a marble table, {{brand}} spring sale, soft light, take {{seed}}"
    input_image: ["{{asset:$product}}", "{{asset:logo}}"]
    aspect_ratio: "{{aspect_ratio}}"
    seed: "{{seed}}"
    duration: 5
  - name: story
    multi_prompt:
      - prompt: "{{product}} close up, {{brand}}"
        duration: 4
      - prompt: "Camera pulls back to reveal the shop, take {{seed}}"
        duration: 6
    input_image: ["{{asset:$product}}"]
    aspect_ratio: "{{aspect_ratio}}"
    seed: "{{seed}}"
"""
    path = folder / "bench.yaml"
    path.write_text(text, "utf-8")
    return path


def run_once(path: Path, catalog: SnapshotCatalog) -> tuple[int, float]:
    """Load, plan and validate; (jobs, seconds)."""
    started = time.perf_counter()
    plan = build_plan(load_manifest(path), catalog)
    return len(plan.jobs), time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs-per-spec", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print the top functions of one run")
    args = parser.parse_args(argv)
    catalog = SnapshotCatalog()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_manifest(Path(tmp), args.jobs_per_spec)
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(run_once, path, catalog)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        timings = [run_once(path, catalog) for _ in range(args.runs)]
    jobs = timings[0][0]
    best = min(seconds for _, seconds in timings)
    print(f"jobs: {jobs}")
    print(f"runs: {', '.join(f'{s:.3f}s' for _, s in timings)}")
    print(f"best: {best:.3f}s  ({jobs / best:,.0f} jobs/s; target < 3 s for 100,000 jobs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
