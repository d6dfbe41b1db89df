"""Benchmark: is the provider's concurrency kept full? Wall time vs. the ideal schedule.

Run: python benchmarks/bench_concurrency.py [--quick] [--configs 64x8,400x100] [--time-scale 0.004]

Fixed latencies (sigma 0: queue wait 3 s + render 120 s simulated, times --time-scale), account
concurrency equal to the runner's concurrency C, so the ideal schedule is ceil(N / C) rounds of one
job time each. The runner runs in this process, wired as the CLI wires it; the emulator runs in a
child process (its own core and GIL, like a remote service), or with --in-process in the same event
loop. Every generation of a round finishes in the same instant (sigma 0), the worst case for the
refill. Printed per configuration:

- wall: `runner.run()` from call to return (SSE connect, every submit, the last downloads included);
- makespan: first enqueue arriving to last generation finishing, as the emulator saw them;
- refill gap: a generation finishing -> the enqueue that takes its slot arriving (emulator clock);
- the ratios to the ideal, and the wall ratio extrapolated to real time (the same absolute overhead
  over a job of 123 s instead of 123 s x time_scale).

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from pathlib import Path
from typing import Any

import _harness as h

from batchgen.emulator import EmulatorConfig, LatencyConfig

TARGET = 1.05
FIXED = LatencyConfig(queue_wait_median_seconds=3.0, video_render_median_seconds=120.0, latency_sigma=0.0)


def refill_gaps(enqueued_at: list[float], completed_at: list[float], concurrency: int) -> list[float]:
    """For the k-th generation to finish (while jobs were left), seconds until the (C+k)-th enqueue."""
    enqueued, finished = sorted(enqueued_at), sorted(completed_at)
    return [
        enqueued[concurrency + k] - done for k, done in enumerate(finished) if concurrency + k < len(enqueued)
    ]


async def run_one(
    base_url: str, api_key: str, jobs: int, concurrency: int, time_scale: float, tmp: Path
) -> h.BatchgenRun:
    manifest = h.write_manifest(tmp, name="conc", count=jobs)
    options = h.run_options(base_url, concurrency=concurrency, time_scale=time_scale)
    return await h.run_batchgen(base_url, api_key, manifest, tmp / "run", options)


def one(jobs: int, concurrency: int, time_scale: float, in_process: bool, limit_s: float) -> dict[str, Any]:
    config = EmulatorConfig(
        time_scale=time_scale,
        seed=3,
        account_concurrency=concurrency,
        keepalive_seconds=max(0.05, 15.0 * time_scale),
        latency=FIXED,
    )
    with h.temp_dir("concurrency") as tmp:
        if in_process:

            async def inline() -> tuple[h.BatchgenRun, list[tuple[float, float | None]]]:
                async with h.emulators([config]) as [emu]:
                    run = await run_one(emu.base_url, emu.api_key, jobs, concurrency, time_scale, tmp)
                    return run, [(g.enqueued_at, g.completed_at) for g in emu.generations()]

            run, times = asyncio.run(asyncio.wait_for(inline(), limit_s))
        else:
            with h.EmulatorProcess(config) as proc:
                run = asyncio.run(
                    asyncio.wait_for(
                        run_one(proc.base_url, proc.api_key, jobs, concurrency, time_scale, tmp), limit_s
                    )
                )
                times = [(rec[2], rec[4]) for rec in proc.records()]
    enqueued = [t[0] for t in times]
    completed = [t[1] for t in times if t[1] is not None]
    return {
        "wall": run.wall_s,
        "makespan": max(completed) - min(enqueued),
        "gaps": refill_gaps(enqueued, completed, concurrency),
        "done": run.outcome.counts.get("done", 0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (under 30 s)")
    parser.add_argument("--configs", help="JOBSxCONCURRENCY, comma-separated")
    parser.add_argument("--time-scale", type=float, default=0.004)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the emulator in this process's event loop instead of a child process",
    )
    parser.add_argument("--limit-s", type=float, default=120.0, help="give up after this long")
    args = parser.parse_args(argv)
    configs = args.configs or ("32x8,200x100" if args.quick else "64x8,128x32,400x100")
    job_s = FIXED.queue_wait_median_seconds + FIXED.video_render_median_seconds
    print(
        f"fixed latencies: queue {FIXED.queue_wait_median_seconds:g} s + render "
        f"{FIXED.video_render_median_seconds:g} s = {job_s:g} s simulated per job; time_scale "
        f"{args.time_scale} -> {job_s * args.time_scale * 1e3:.0f} ms real; account concurrency = C"
    )
    print()
    print(
        f"{'N x C':>10}{'rounds':>8}{'ideal':>9}{'wall':>9}{'ratio':>8}{'makespan':>10}{'ratio':>8}"
        f"{'at real time':>14}   refill gap (finish -> next enqueue arrives)"
    )
    for spec in configs.split(","):
        jobs, concurrency = (int(x) for x in spec.lower().split("x"))
        result = one(jobs, concurrency, args.time_scale, args.in_process, args.limit_s)
        rounds = math.ceil(jobs / concurrency)
        ideal = rounds * job_s * args.time_scale
        wall, makespan = float(result["wall"]), float(result["makespan"])
        real_ratio = (rounds * job_s + (wall - ideal)) / (rounds * job_s)
        gaps = result["gaps"]
        print(
            f"{spec:>10}{rounds:>8}{ideal:>8.3f}s{wall:>8.3f}s{wall / ideal:>8.3f}{makespan:>9.3f}s"
            f"{makespan / ideal:>8.3f}{real_ratio:>14.5f}   {h.summary_ms(gaps)}"
        )
        if result["done"] != jobs:
            print(f"{'':>10}only {result['done']:.0f} of {jobs} jobs done")
    print()
    print(
        f"target: wall <= {TARGET} x ideal. The compressed runs overstate the ratio: the overhead is "
        "a few ms per round plus start-up, against a job time of 123 s on the real service."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
