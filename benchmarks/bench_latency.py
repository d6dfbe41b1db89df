"""Benchmark: completion -> download started, batchgen (push over the shared SSE stream) vs. polling.

Run: python benchmarks/bench_latency.py [--quick] [--jobs 160] [--concurrency 32] [--time-scale 0.02]

Measured inside the emulator, on one monotonic clock, per generation (see batchgen/emulator/timeline.py):
`terminal` (the engine marks it succeeded and publishes the event), `event_sent` (the SSE frame is
written) and `first_download` (the first GET of its result URL arrives). So the figure covers the
whole client path: SSE read and parse, journal commit, download queue, URL request on the wire.

Phase A: batchgen alone, many completions (about concurrency / render time per second).
Phase A2: batchgen alone, a burst of generations that all finish in the same instant (sigma 0).
Phase B: side by side in one event loop, each against its own emulator with the same settings:
batchgen and polling clients (the fal / Replicate pattern) with 0.5 s and 5 s simulated intervals.
A polling client's delay is a fraction of its (scaled) interval, so it is shown in simulated seconds
(measured / time_scale), which is what it would be against the real service; batchgen's push delay
is real time and does not scale. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _harness as h

from batchgen.emulator import Emulator, EmulatorConfig, LatencyConfig

TARGET_P50_MS = 20.0
# A shorter render than the 120 s default: the detection delay does not depend on the render time
# (only on completions per second and the poll interval), and the phases stay a few seconds long.
LATENCY = LatencyConfig(queue_wait_median_seconds=3.0, video_render_median_seconds=30.0, latency_sigma=0.4)


@dataclass
class Delays:
    client: str
    time_scale: float
    interval_s: float | None
    to_event: list[float]  # terminal -> event written (batchgen only)
    event_to_download: list[float]  # event written -> first download GET (batchgen only)
    to_download: list[float]  # terminal -> first download GET


def emulator_config(time_scale: float, concurrency: int, latency: LatencyConfig = LATENCY) -> EmulatorConfig:
    return EmulatorConfig(
        time_scale=time_scale,
        seed=2,
        account_concurrency=concurrency,
        keepalive_seconds=max(0.05, 15.0 * time_scale),
        latency=latency,
    )


def delays_of(emu: Emulator, client: str, time_scale: float, interval_s: float | None) -> Delays:
    result = Delays(client, time_scale, interval_s, [], [], [])
    for gen in emu.generations():
        marks = emu.marks(gen.generation_id)
        if gen.status != "succeeded" or marks.terminal is None or marks.first_download is None:
            continue
        result.to_download.append(marks.first_download - marks.terminal)
        if marks.event_sent is not None:
            result.to_event.append(marks.event_sent - marks.terminal)
            result.event_to_download.append(marks.first_download - marks.event_sent)
    return result


async def batchgen_phase(
    emu: Emulator, tmp: Path, name: str, jobs: int, concurrency: int, time_scale: float
) -> Delays:
    manifest = h.write_manifest(tmp, name=name, count=jobs)
    options = h.run_options(emu.base_url, concurrency=concurrency, time_scale=time_scale)
    await h.run_batchgen(emu.base_url, emu.api_key, manifest, tmp / name, options)
    return delays_of(emu, "batchgen (shared SSE)", time_scale, None)


async def polling_phase(
    emu: Emulator,
    tmp: Path,
    bodies: list[dict[str, Any]],
    interval: float,
    concurrency: int,
    time_scale: float,
) -> Delays:
    client = h.PollingClient(
        emu.base_url,
        emu.api_key,
        interval_s=interval * time_scale,
        concurrency=concurrency,
        out_dir=tmp / f"poll-{interval}",
    )
    await client.run(bodies)
    return delays_of(emu, f"polling every {interval:g} s", time_scale, interval)


async def main_async(args: argparse.Namespace) -> tuple[Delays, Delays, list[Delays]]:
    async with asyncio.timeout(args.limit_s):
        with h.temp_dir("latency") as tmp:
            async with h.emulators([emulator_config(args.time_scale, args.concurrency)]) as [emu]:
                dense = await batchgen_phase(emu, tmp, "dense", args.jobs, args.concurrency, args.time_scale)
            fixed = LatencyConfig(
                queue_wait_median_seconds=0.0, video_render_median_seconds=30.0, latency_sigma=0.0
            )
            async with h.emulators([emulator_config(args.time_scale, args.burst, fixed)]) as [emu]:
                burst = await batchgen_phase(emu, tmp, "burst", args.burst, args.burst, args.time_scale)
            ts_b, c_b, n_b = args.side_time_scale, args.side_concurrency, args.side_jobs
            manifest = h.write_manifest(tmp, name="side-bodies", count=n_b)
            bodies = h.plan_bodies(await h.load_plan(manifest, None))
            async with h.emulators([emulator_config(ts_b, c_b)] * (1 + len(args.intervals))) as emus:
                side = await asyncio.gather(
                    batchgen_phase(emus[0], tmp, "side", n_b, c_b, ts_b),
                    *(
                        polling_phase(e, tmp, bodies, interval, c_b, ts_b)
                        for e, interval in zip(emus[1:], args.intervals, strict=True)
                    ),
                )
    return dense, burst, list(side)


def report(dense: Delays, burst: Delays, side: list[Delays], args: argparse.Namespace) -> None:
    render = LATENCY.video_render_median_seconds
    print(
        f"emulator latencies (simulated): queue {LATENCY.queue_wait_median_seconds:g} s, render median "
        f"{render:g} s, sigma {LATENCY.latency_sigma}"
    )
    print()
    rate = args.concurrency / ((render + LATENCY.queue_wait_median_seconds) * args.time_scale)
    print(
        f"A. batchgen alone: {args.jobs} jobs, concurrency {args.concurrency}, time_scale {args.time_scale} "
        f"(about {rate:.0f} completions/s), {len(dense.to_download)} downloads measured"
    )
    print(f"   terminal -> event written        {h.summary_ms(dense.to_event)}")
    print(f"   event written -> download GET    {h.summary_ms(dense.event_to_download)}")
    print(f"   terminal -> download GET         {h.summary_ms(dense.to_download)}")
    print(
        f"A2. burst: {args.burst} generations finishing in the same instant (sigma 0), "
        f"{args.downloads} download workers (the default)"
    )
    print(f"   terminal -> download GET         {h.summary_ms(burst.to_download)}")
    print()
    print(
        f"B. side by side: {args.side_jobs} jobs each, concurrency {args.side_concurrency}, "
        f"time_scale {args.side_time_scale}"
    )
    for d in side:
        line = f"   {d.client:<24} terminal -> download GET  {h.summary_ms(d.to_download)}"
        if d.interval_s is not None and d.to_download:
            sim = [x / d.time_scale for x in d.to_download]
            line += (
                f"   = simulated p50 {h.percentile(sim, 50):.2f} s, p95 {h.percentile(sim, 95):.2f} s, "
                f"max {max(sim):.2f} s (about interval/2 = {d.interval_s / 2:g} s expected)"
            )
        print(line)
    print()
    p50 = h.percentile(dense.to_download, 50) * 1e3 if dense.to_download else float("nan")
    print(f"batchgen p50 completion -> download started: {p50:.1f} ms (target <= {TARGET_P50_MS:g} ms).")
    bg_side = side[0].to_download
    for d in side[1:]:
        if d.interval_s is None or not d.to_download or not bg_side:
            continue
        poll_s = h.percentile(d.to_download, 50) / d.time_scale
        ratio = poll_s / h.percentile(bg_side, 50)
        print(
            f"polling every {d.interval_s:g} s: p50 {poll_s:.2f} s against the real service, "
            f"{ratio:,.0f}x batchgen's p50 in phase B."
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (under 30 s)")
    parser.add_argument("--jobs", type=int, help="phase A jobs")
    parser.add_argument("--concurrency", type=int, help="phase A concurrency")
    parser.add_argument("--time-scale", type=float, help="phase A time scale")
    parser.add_argument("--side-jobs", type=int, help="phase B jobs per client")
    parser.add_argument("--side-concurrency", type=int)
    parser.add_argument("--side-time-scale", type=float)
    parser.add_argument("--intervals", help="phase B simulated poll intervals, comma-separated")
    parser.add_argument("--burst", type=int, default=32, help="generations finishing at once in phase A2")
    parser.add_argument("--limit-s", type=float, default=120.0, help="give up after this long")
    args = parser.parse_args(argv)
    quick = {
        "jobs": 64,
        "concurrency": 16,
        "time_scale": 0.02,
        "side_jobs": 8,
        "side_concurrency": 4,
        "side_time_scale": 0.04,
        "intervals": "0.5,5",
    }
    full = {
        "jobs": 160,
        "concurrency": 32,
        "time_scale": 0.02,
        "side_jobs": 24,
        "side_concurrency": 8,
        "side_time_scale": 0.04,
        "intervals": "0.5,5",
    }
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.intervals = [float(x) for x in str(args.intervals).split(",")]
    args.downloads = h.run_options("http://x", concurrency=1).limits.downloads
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dense, burst, side = asyncio.run(main_async(args))
    report(dense, burst, side, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
