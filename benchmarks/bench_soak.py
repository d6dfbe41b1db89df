"""Row `soak` of benchmarks/run.py (issue 19), behind `--soak`: one long run, watched from outside.

batchgen runs through the CLI at `-j 4` against an emulator with 4 account slots, for about
`--soak-minutes` (default 60): enough jobs of 1-5 minute renders (each carried in its prompt,
compressed 20x: 3-15 s real) to keep it busy that long by the ideal schedule. The client's clock is
the real one (its default timers: reconcile, stream idle), and the emulator cuts the event stream
every `--soak-reconnect-minutes` (default 10) so that it reconnects. Every second, the process's
RSS and CPU time are read from /proc. Measured:

- RSS growth after start-up: the highest RSS from the end of start-up to the last POST (after it
  the run writes its results and report), minus the RSS at the end of start-up: the first result
  downloaded plus min(60 s, a tenth of the soak). Goal ≤ 5 MiB.
- CPU while waiting: CPU time over wall time of the one-second samples in which nothing happened
  (no POST arriving, no generation finishing, no result being fetched, within 0.25 s). Goal ≤ 0.5 %
  of a core.
- Requests per generation, counted by the emulator, against 2 + 3/N + 2 per reconnect / N (N the
  generations of the soak).

Run: python benchmarks/run.py --soak [--soak-minutes 60] [--soak-reconnect-minutes 10]
"""

from __future__ import annotations

import itertools
import time
from bisect import bisect_left
from dataclasses import dataclass
from typing import TYPE_CHECKING

import _harness as h
from _rows import Row, Spawned, emulator_command, run_command
from bench_makespan import SCALE, render_config, render_times, write_render_manifest
from ideal import ideal_makespan, jobs_to_fill

from batchgen.emulator import FaultConfig

if TYPE_CHECKING:
    from run import Bench

SLOTS = 4
SAMPLE_S = 1.0
QUIET_MARGIN_S = 0.25


@dataclass
class Sample:
    at: float  # monotonic
    rss_kib: int
    cpu_s: float


def watch(client: Spawned, deadline: float) -> list[Sample]:
    """RSS and CPU every SAMPLE_S until the client exits or the deadline passes."""
    samples: list[Sample] = []
    while client.running() and time.monotonic() < deadline:
        rss, cpu = client.rss_kib(), client.cpu_s()
        if rss and cpu is not None:
            samples.append(Sample(time.monotonic(), rss, cpu))
        time.sleep(SAMPLE_S)
    return samples


def quiet_cpu(
    samples: list[Sample], events: list[float], start: float, end: float
) -> tuple[float, float, float]:
    """CPU share in the sample intervals within [start, end] with no event near them, the wall time
    those intervals cover, and the CPU share over the whole of [start, end]."""
    cpu = wall = all_cpu = all_wall = 0.0
    for a, b in itertools.pairwise(samples):
        if a.at < start or b.at > end:
            continue
        all_cpu, all_wall = all_cpu + b.cpu_s - a.cpu_s, all_wall + b.at - a.at
        i = bisect_left(events, a.at - QUIET_MARGIN_S)
        if i < len(events) and events[i] <= b.at + QUIET_MARGIN_S:
            continue
        cpu, wall = cpu + b.cpu_s - a.cpu_s, wall + b.at - a.at
    return (cpu / wall if wall else float("nan")), wall, (all_cpu / all_wall if all_wall else float("nan"))


def soak_row(bench: Bench) -> Row:
    minutes, reconnect = bench.soak_minutes, bench.soak_reconnect_minutes
    renders = render_times(max(100, int(minutes * 60 * SLOTS / (60 * SCALE)) * 2), seed=23)
    jobs = jobs_to_fill([r * SCALE for r in renders], SLOTS, minutes * 60)
    renders = renders[:jobs]
    manifest = write_render_manifest(bench.work, "soak", renders)
    config = render_config(SLOTS, 23, FaultConfig(sse_cut_every_seconds=reconnect * 60))
    out = bench.work / "soak-out"
    figure = f"soak, {minutes:g} min, -j {SLOTS}, {jobs} jobs, a reconnect every {reconnect:g} min"
    goal = "≤ 5 MiB / ≤ 0.5 % / ≤ 2 + 3/N + 2 per reconnect"
    with h.EmulatorProcess(config) as emu:
        command = run_command(manifest, out, emu, "-j", str(SLOTS))
        bench.note("soak", f"emulator: {emulator_command(config)}")
        bench.note("soak", f"batchgen: {bench.show(command, emu.base_url)}")
        with Spawned(command, cwd=bench.work, log=bench.work / "soak.log") as client:
            samples = watch(client, time.monotonic() + minutes * 60 * 1.5 + 300)
            code = client.wait(60)
            tail = client.tail()
        records, posts, counts = emu.records(), emu.posts(), emu.counts()
    fetched = sorted(r[5].first_download for r in records if r[5].first_download is not None)
    if code != 0 or not fetched or len(samples) < 10:
        return Row("soak", figure, ("failed", "—", "—", "—"), "—", goal, None, [f"exit {code}: {tail}"])
    settle = min(60.0, minutes * 6)
    steady_from, last_post = fetched[0] + settle, max(at for at, _, _ in posts)
    steady = [s for s in samples if steady_from <= s.at <= last_post]
    base = steady[0].rss_kib if steady else samples[-1].rss_kib
    growth_mib = (max(s.rss_kib for s in steady) - base) / 1024 if steady else float("nan")
    events = sorted(
        [*fetched, *(at for at, _, _ in posts), *(r[5].terminal for r in records if r[5].terminal)]
    )
    waiting, quiet_s, overall = quiet_cpu(samples, events, fetched[0], last_post)
    n = len(fetched)
    reconnects = counts["sse_connections"] - 1
    sent = sum(counts["requests"].values())
    bound = 2 + 3 / n + 2 * reconnects / n
    per_gen = sent / n
    ideal = ideal_makespan([r * SCALE for r in renders], SLOTS)
    notes = [
        f"{n} of {jobs} generations fetched; exit {code}; wall {samples[-1].at - client.started:.0f} s "
        f"(ideal makespan {ideal:.0f} s); {len(samples)} samples",
        f"RSS: {samples[0].rss_kib / 1024:.1f} MiB at the first sample, {base / 1024:.1f} MiB at the end of "
        f"start-up, highest {max(s.rss_kib for s in samples) / 1024:.1f} MiB (the end's results and report included)",
        f"CPU: {waiting * 100:.2f} % of a core over {quiet_s:.0f} s of quiet samples; {overall * 100:.2f} % "
        "over the whole steady part",
        f"requests: {sent} for {n} generations, {reconnects} reconnects; bound 2 + 3/{n} + 2 x {reconnects}/{n} "
        f"= {bound:.3f}: "
        + ", ".join(f"{route} {k}" for route, k in h.requests_by_endpoint(counts["requests"]).items()),
        "the machine is shared: CPU and RSS move with its load",
    ]
    met = growth_mib <= 5 and waiting <= 0.005 and sent <= 2 * n + 3 + 2 * reconnects  # in whole requests
    cells = (
        f"+{growth_mib:.1f} MiB / {waiting * 100:.2f} % / {per_gen:.3f} req",
        "—",
        f"bound {bound:.3f} req",
        "—",
    )
    return Row("soak", figure, cells, f"{per_gen / bound:.2f}x request bound", goal, met, notes)
