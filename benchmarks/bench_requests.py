"""Benchmark: HTTP requests per generation, batchgen (one shared SSE stream) vs. per-job polling clients.

Run: python benchmarks/bench_requests.py [--quick] [--jobs 16] [--concurrency 8] [--time-scale 0.04]
                                         [--intervals 0.5,1,5,10]

Every client runs the same manifest against its own in-process emulator with the same settings
(default latencies: queue wait 3 s, video render lognormal around 120 s, sigma 0.4; all simulated
and multiplied by --time-scale), side by side in one event loop. The polling client is the
fal / Replicate pattern (enqueue, `sleep(P); GET /api/ai/queue/{id}` until terminal, download);
its interval P is simulated seconds, scaled by the same time_scale. batchgen's own timers (safety
reconcile every 60 s, stream idle watchdog) are scaled the same way, so the run is a miniature of a
real one. Requests are counted by the emulator, per route. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _harness as h

from batchgen.emulator import EmulatorConfig, LatencyConfig

TARGET = 2.1


@dataclass
class Row:
    client: str
    interval_s: float | None  # simulated poll interval; None for batchgen
    done: int
    requests: dict[str, int]
    wall_s: float
    poll_period_s: float | None = None  # achieved, simulated seconds

    @property
    def total(self) -> int:
        return sum(self.requests.values())


def emulator_config(time_scale: float, concurrency: int) -> EmulatorConfig:
    return EmulatorConfig(
        time_scale=time_scale,
        seed=1,
        account_concurrency=concurrency,
        keepalive_seconds=max(0.05, 15.0 * time_scale),  # the 15 s keep-alive, scaled like the rest
        latency=LatencyConfig(),  # queue 3 s, video 120 s, sigma 0.4 (simulated)
    )


async def run_batchgen(emu: Any, manifest: Path, tmp: Path, args: argparse.Namespace) -> Row:
    options = h.run_options(emu.base_url, concurrency=args.concurrency, time_scale=args.time_scale)
    run = await h.run_batchgen(emu.base_url, emu.api_key, manifest, tmp / "batchgen", options)
    await emu.wait_idle()
    return Row(
        "batchgen (shared SSE)",
        None,
        run.outcome.counts.get("done", 0),
        h.requests_by_endpoint(emu.counters.snapshot()["requests"]),
        run.wall_s,
    )


async def run_polling(
    emu: Any, bodies: list[dict[str, Any]], interval: float, tmp: Path, args: argparse.Namespace
) -> Row:
    client = h.PollingClient(
        emu.base_url,
        emu.api_key,
        interval_s=interval * args.time_scale,
        concurrency=args.concurrency,
        out_dir=tmp / f"poll-{interval}",
    )
    stats = await client.run(bodies)
    period = stats.mean_poll_period_s()
    done = sum(1 for job in stats.jobs if job.status == "succeeded")
    return Row(
        f"polling every {interval:g} s",
        interval,
        done,
        h.requests_by_endpoint(emu.counters.snapshot()["requests"]),
        stats.wall_s,
        None if period is None else period / args.time_scale,
    )


async def main_async(args: argparse.Namespace) -> list[Row]:
    with h.temp_dir("requests") as tmp:
        manifest = h.write_manifest(tmp, name="requests", count=args.jobs)
        bodies = h.plan_bodies(await h.load_plan(manifest, None))
        configs = [emulator_config(args.time_scale, args.concurrency)] * (1 + len(args.intervals))
        async with h.emulators(configs) as emus:
            async with asyncio.timeout(args.limit_s):
                return list(
                    await asyncio.gather(
                        run_batchgen(emus[0], manifest, tmp, args),
                        *(
                            run_polling(emu, bodies, interval, tmp, args)
                            for emu, interval in zip(emus[1:], args.intervals, strict=True)
                        ),
                    )
                )


def print_rows(rows: list[Row], args: argparse.Namespace) -> None:
    latency = LatencyConfig()
    job_s = latency.queue_wait_median_seconds + latency.video_render_median_seconds
    mean_job_s = job_s * math.exp(latency.latency_sigma**2 / 2)  # lognormal mean
    print(
        f"jobs: {args.jobs}   concurrency: {args.concurrency} (account concurrency the same)   "
        f"time_scale: {args.time_scale}   simulated median job: {job_s:.0f} s "
        f"(queue {latency.queue_wait_median_seconds:g} s + render {latency.video_render_median_seconds:g} s, "
        f"sigma {latency.latency_sigma})"
    )
    print()
    print(
        f"{'client':<24}{'done':>6}{'requests':>10}{'per gen':>9}{'polls/gen':>11}{'poll period':>13}"
        f"{'wall':>8}   by endpoint"
    )
    for row in rows:
        polls = row.requests.get("GET /api/ai/queue/{id}", 0) / max(1, row.done)
        period = "" if row.poll_period_s is None else f"{row.poll_period_s:.2f} s"
        endpoints = ", ".join(f"{route} {n}" for route, n in row.requests.items())
        print(
            f"{row.client:<24}{row.done:>6}{row.total:>10}{row.total / max(1, row.done):>9.2f}"
            f"{polls:>11.1f}{period:>13}{row.wall_s:>7.1f}s   {endpoints}"
        )
    print()
    bg = rows[0]
    streams = bg.requests.get("GET /api/events", 0)
    marginal = (bg.total - streams) / max(1, bg.done)
    lists = bg.requests.get("GET /api/ai/queue", 0)
    print(
        f"batchgen: {bg.total / max(1, bg.done):.2f} requests per generation "
        f"({marginal:.2f} without the {streams} shared stream connection(s); target <= {TARGET})."
    )
    enqueue_download = bg.requests.get("POST /api/ai/queue", 0) + bg.requests.get("GET <result>", 0)
    print(
        f"  enqueue + download: {enqueue_download / max(1, bg.done):.2f} per generation; "
        f"safety reconciles (GET /api/ai/queue every 60 s simulated, one call for all jobs): {lists} "
        f"= {lists / max(1, bg.done):.2f} per generation (about mean job / (60 s x concurrency) = "
        f"{mean_job_s / (60 * args.concurrency):.2f})."
    )
    big = 2 + 1 / 1000 + 300 / (60 * args.concurrency)
    print(
        f"  extrapolated to 1,000 jobs of 300 s at concurrency {args.concurrency}: "
        f"{big:.2f} per generation, about {big * 1000:,.0f} requests in all."
    )
    for row in rows[1:]:
        assert row.interval_s is not None
        ratio = row.total / max(1, bg.total)
        achieved = row.poll_period_s or row.interval_s
        expected = mean_job_s / achieved + 2
        print(
            f"polling every {row.interval_s:g} s: {row.total / max(1, row.done):.1f} per generation "
            f"(about {expected:.0f} expected = mean job {mean_job_s:.0f} s / achieved period + 2), "
            f"{ratio:.0f}x batchgen's total; 1,000 jobs of 300 s: about "
            f"{1000 * (300 / row.interval_s + 2):,.0f} requests (round trips not counted)."
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (under 30 s)")
    parser.add_argument("--jobs", type=int)
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--time-scale", type=float)
    parser.add_argument("--intervals", help="simulated poll intervals in seconds, comma-separated")
    parser.add_argument("--limit-s", type=float, default=120.0, help="give up after this long")
    args = parser.parse_args(argv)
    quick = {"jobs": 8, "concurrency": 4, "time_scale": 0.02, "intervals": "0.5,5"}
    full = {"jobs": 16, "concurrency": 8, "time_scale": 0.04, "intervals": "0.5,1,5,10"}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.intervals = [float(x) for x in str(args.intervals).split(",")]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = asyncio.run(main_async(args))
    print_rows(rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
