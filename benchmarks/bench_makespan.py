"""Rows `makespan` and `refill` of benchmarks/run.py (issue 19): are the account's render slots kept
full through a 429 storm and a dropped event stream?

One run through the CLI: 200 jobs at `-j 20` against an emulator with 20 account slots, each job's
render time carried in its prompt (1-5 minutes, seeded, `render_seconds_pattern`) and compressed
20x (time scale 0.05: 3-15 s real), no queue wait. Half a minute after the first POST, a 5 s storm
of 429s hits every POST /api/ai/queue (`rate_limit_burst_seconds`, set at that moment); after the
100th completion event the event stream is cut once (`sse_cut_once_after_events`). batchgen's
timers are scaled like the renders (`--reconcile-interval 15`, 300 s x 0.05).

- `makespan`: the first POST arriving -> the last generation finishing (the emulator's marks),
  divided by the ideal: the plan-order schedule on 20 slots with the same render times and the same
  forced pauses (benchmarks/ideal.py; the storm at the same moment after the first POST). Goal ≤ 1.02.
- `refill`: a generation finishing -> the POST that takes its slot arriving (the k-th finish is
  refilled by the (20+k)-th accepted POST), p95, leaving out the refills the storm held back (their
  wait is the Retry-After, already in the ideal). Goal ≤ 50 ms.

Run: python benchmarks/bench_makespan.py   (the same as run.py --only makespan,refill)
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _harness as h
import yaml
from _rows import Row, Spawned, emulator_command, run_command, wait_for
from ideal import Storm, ideal_makespan

from batchgen.emulator import EmulatorConfig, FaultConfig, LatencyConfig

if TYPE_CHECKING:
    from run import Bench

JOBS, SLOTS, SCALE = 200, 20, 0.05
STORM_AFTER_S, STORM_S = 30.0, 5.0  # real seconds: when (after the first POST) and how long
CUT_AFTER_EVENTS = 100
PATTERN = r"render-(\d+)s"
QUEUE_POST = "POST /api/ai/queue"


def render_times(count: int, seed: int) -> list[int]:
    """`count` render times of 1-5 minutes (simulated seconds), the same for the same seed."""
    rng = random.Random(seed)
    return [rng.randint(60, 300) for _ in range(count)]


def write_render_manifest(folder: Path, name: str, renders: list[int]) -> Path:
    """One video job per render time, in this order; each prompt carries its render time."""
    shots = [f"c{i:05d}-render-{seconds}s" for i, seconds in enumerate(renders)]
    manifest = {
        "version": 1,
        "name": name,
        "model": h.VIDEO_MODEL,
        "defaults": {"aspect_ratio": "16:9", "duration": 5},
        "jobs": [{"name": "clip", "prompt": "Clip {shot}, slow dolly shot", "matrix": {"shot": shots}}],
        "output": {"pattern": "{name}/{shot}.mp4"},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def render_config(slots: int, seed: int, faults: FaultConfig) -> EmulatorConfig:
    latency = LatencyConfig(queue_wait_median_seconds=0.0, latency_sigma=0.0, render_seconds_pattern=PATTERN)
    return EmulatorConfig(
        time_scale=SCALE, seed=seed, account_concurrency=slots, latency=latency, faults=faults
    )


@dataclass
class Outcome:
    code: int | None
    wall_s: float
    first_post: float  # monotonic
    storm: Storm  # in seconds after the first POST
    posts: list[tuple[float, int | None, str | None]]
    terminals: list[float]  # monotonic, sorted
    counts: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def run_once(bench: Bench, manifest: Path) -> Outcome | str:
    config = render_config(SLOTS, 19, FaultConfig(sse_cut_once_after_events=CUT_AFTER_EVENTS))
    out = bench.work / "makespan-out"
    with h.EmulatorProcess(config) as emu:
        command = run_command(
            manifest, out, emu, "-j", str(SLOTS), "--reconcile-interval", f"{300 * SCALE:g}"
        )
        bench.note("makespan", f"emulator: {emulator_command(config)}")
        bench.note("makespan", f"batchgen: {bench.show(command, emu.base_url)}")
        bench.note(
            "makespan",
            f"at {STORM_AFTER_S:g} s after the first POST: emu.set_faults("
            f"rate_limit_burst_seconds={STORM_S:g}, rate_limit_routes=('{QUEUE_POST}',))",
        )
        with Spawned(command, cwd=bench.work, log=bench.work / "makespan.log") as client:
            wait_for(
                lambda: emu.first_post()[0] is not None or not client.running(),
                timeout_s=bench.timeout_s,
                every_s=0.05,
            )
            first = emu.first_post()[0]
            if first is None:
                return f"no POST: {client.tail()}"
            wait_for(
                lambda: time.monotonic() >= first + STORM_AFTER_S or not client.running(),
                timeout_s=STORM_AFTER_S + 1,
                every_s=0.01,
            )
            epoch = emu.set_faults(rate_limit_burst_seconds=STORM_S, rate_limit_routes=(QUEUE_POST,))
            code = client.wait(bench.timeout_s)
            wall = time.monotonic() - client.started
            tail = client.tail() if code != 0 else ""
        records = emu.records()
        outcome = Outcome(
            code,
            wall,
            first,
            Storm(epoch - first, epoch - first + STORM_S),
            emu.posts(),
            sorted(r[5].terminal for r in records if r[5].terminal is not None),
            emu.counts(),
        )
    if tail:
        outcome.notes.append(f"batchgen exit {code}: {tail}")
    done = sum(1 for r in records if r[1] == "succeeded" and r[5].first_download is not None)
    outcome.notes.append(f"{done} of {JOBS} generations succeeded and downloaded; batchgen exit {code}")
    return outcome


def refill_gaps(outcome: Outcome) -> tuple[list[float], int]:
    """Seconds from the k-th finish to the (SLOTS+k)-th accepted POST, without the storm's; and how
    many the storm held back."""
    accepted = sorted(at for at, status, _ in outcome.posts if status is not None and status < 300)
    storm_from = outcome.first_post + outcome.storm.start
    storm_until = outcome.first_post + outcome.storm.end + 1.0  # a Retry-After is rounded up
    gaps, held = [], 0
    for k, finished in enumerate(outcome.terminals):
        if SLOTS + k >= len(accepted):
            break
        refilled = accepted[SLOTS + k]
        if finished < storm_until and refilled >= storm_from:
            held += 1
            continue
        gaps.append(refilled - finished)
    return gaps, held


def measure(bench: Bench) -> Outcome | str:
    if "makespan" not in bench.cache:
        renders = render_times(JOBS, seed=19)
        manifest = write_render_manifest(bench.work, "makespan", renders)
        outcome = run_once(bench, manifest)
        if isinstance(outcome, Outcome):
            outcome.notes.append(
                f"renders (simulated): {min(renders)}-{max(renders)} s, mean {sum(renders) / len(renders):.0f} s; "
                f"x {SCALE} = {min(renders) * SCALE:.1f}-{max(renders) * SCALE:.1f} s real"
            )
        bench.cache["makespan"] = (outcome, renders)
    outcome, _ = bench.cache["makespan"]
    return outcome  # type: ignore[no-any-return]


def makespan_row(bench: Bench) -> Row:
    outcome = measure(bench)
    figure = (
        f"makespan / ideal, C = {SLOTS}, {JOBS} jobs of 1-5 min (x{SCALE:g}), a 429 storm, a dropped stream"
    )
    goal = "≤ 1.02x ideal"
    if isinstance(outcome, str) or outcome.code != 0 or not outcome.terminals:
        notes = [outcome] if isinstance(outcome, str) else outcome.notes
        return Row("makespan", figure, ("failed", "—", "—", "—"), "—", goal, None, notes)
    renders = [seconds * SCALE for seconds in bench.cache["makespan"][1]]
    ideal = ideal_makespan(renders, SLOTS, [outcome.storm])
    plain = ideal_makespan(renders, SLOTS)
    makespan = outcome.terminals[-1] - outcome.first_post
    faults = outcome.counts["faults"]
    posts_429 = sum(1 for _, status, _ in outcome.posts if status == 429)
    notes = [
        *outcome.notes,
        f"makespan {makespan:.2f} s (first POST -> last generation finished); ideal {ideal:.2f} s "
        f"({plain:.2f} s without the storm); batchgen spawn -> exit {outcome.wall_s:.1f} s",
        f"429 storm at {outcome.storm.start:.1f}-{outcome.storm.end:.1f} s after the first POST: "
        f"{posts_429} POSTs answered 429; stream cuts {faults.get('sse_cut', 0)}, stream connections "
        f"{outcome.counts['sse_connections']}",
        "requests: "
        + ", ".join(
            f"{route} {n}" for route, n in h.requests_by_endpoint(outcome.counts["requests"]).items()
        ),
    ]
    ratio = makespan / ideal
    return Row(
        "makespan",
        figure,
        (f"{makespan:.1f} s", "—", f"ideal {ideal:.1f} s", "—"),
        f"{ratio:.3f}x ideal",
        goal,
        ratio <= 1.02,
        notes,
    )


def refill_row(bench: Bench) -> Row:
    outcome = measure(bench)
    figure = "generation finished -> next POST arrives, p95 (the makespan run)"
    goal = "p95 ≤ 50 ms"
    if isinstance(outcome, str) or not outcome.terminals:
        return Row("refill", figure, ("failed", "—", "—", "—"), "—", goal, None, [str(outcome)])
    gaps, held = refill_gaps(outcome)
    if not gaps:
        return Row("refill", figure, ("failed", "—", "—", "—"), "—", goal, None, ["no refill measured"])
    p95 = h.percentile(gaps, 95) * 1e3
    notes = [
        f"{len(gaps)} refills: {h.summary_ms(gaps)}; {held} held back by the 429 storm left out",
        "the k-th generation to finish (the emulator's mark) -> the (20+k)-th accepted POST arriving",
    ]
    bench.note("refill", "the same run as [makespan]")
    return Row("refill", figure, (f"{p95:.1f} ms", "—", "—", "—"), "—", goal, p95 <= 50, notes)


if __name__ == "__main__":
    import run

    sys.exit(run.main(["--only", "makespan,refill"]))
