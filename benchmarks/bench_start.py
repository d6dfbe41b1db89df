"""Rows of benchmarks/run.py that time how fast batchgen gets going (issue 19): each beside its
reference, measured through the CLI in the same run.

- `help`: `python -m batchgen --help` beside `python -c pass` (goal ≤ 3x).
- `plan-10`: `python -m batchgen plan` of a 10-job manifest, offline, beside
  `python -c "import yaml, jsonschema"`, what planning has to load (goal ≤ 2x).
- `first-post`: spawn -> the first POST /api/ai/queue arriving at the emulator, for a fresh
  10,000-job run and for the resume of one stopped with Ctrl-C half-way (goal ≤ 0.5 s each);
  beside benchmarks/ceiling.py's spawn -> first POST with the same 10,000 bodies.
- `rerun`: a rerun of an all-done 20,000-job run (it sends nothing) beside
  benchmarks/rerun_floor.py, which expands the plan and stats every output (goal ≤ 3x).

Run: python benchmarks/bench_start.py [--quick]   (the same as run.py --only help,plan-10,first-post,rerun)
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import _harness as h
from _rows import (
    HERE,
    PY,
    Proc,
    Row,
    Spawned,
    alternate,
    child_env,
    emulator_command,
    ratio_row,
    run_command,
    run_measured,
    wait_for,
)

from batchgen.emulator import EmulatorConfig

if TYPE_CHECKING:
    from run import Bench

ZERO = EmulatorConfig(time_scale=0.0, account_concurrency=1_000_000)
FIRST_POST_JOBS = 10_000
RERUN_JOBS = 20_000
POLL_S = 0.05  # how often the emulator is asked; the times come from its own marks, not from this


def start_reps(bench: Bench) -> int:
    return 5 if bench.quick else 11


def help_row(bench: Bench) -> Row:
    commands = {"batchgen --help": [PY, "-m", "batchgen", "--help"], "python -c pass": [PY, "-c", "pass"]}
    runs = alternate(commands, reps=start_reps(bench), timeout_s=bench.timeout_s, cwd=bench.work)
    for name, command in commands.items():
        bench.note("help", f"{name}: {bench.show(command)}")
    notes = ["wall time from spawn to exit, median of alternating runs"]
    return ratio_row(
        "help", "`batchgen --help`", runs, goal=3.0, goal_text="≤ 3x python -c pass", notes=notes
    )


def plan_small_row(bench: Bench) -> Row:
    manifest = bench.manifest(10)
    imports = "import yaml, jsonschema"
    commands = {
        "batchgen plan": [PY, "-m", "batchgen", "plan", str(manifest)],
        "imports": [PY, "-c", imports],
    }
    runs = alternate(commands, reps=start_reps(bench), timeout_s=bench.timeout_s, cwd=bench.work)
    for name, command in commands.items():
        bench.note("plan-10", f"{name}: {bench.show(command)}")
    notes = [
        "offline (no OXEN_API_KEY): the model is checked against the snapshot shipped with batchgen; "
        f'the reference is `python -c "{imports}"`, the libraries planning has to load',
        "wall time from spawn to exit, median of alternating runs",
    ]
    return ratio_row(
        "plan-10",
        "`batchgen plan`, 10 jobs, offline",
        runs,
        goal=2.0,
        goal_text="≤ 2x the imports",
        notes=notes,
    )


# -- spawn -> first POST ----------------------------------------------------------------------------


def first_post(emu: h.EmulatorProcess, client: Spawned, timeout_s: float) -> float | None:
    """Seconds from the client's spawn to its first POST arriving (None: it exited or timed out first)."""
    wait_for(
        lambda: emu.first_post()[0] is not None or not client.running(), timeout_s=timeout_s, every_s=POLL_S
    )
    at, _ = emu.first_post()
    return None if at is None else at - client.started


def stop_half_way(emu: h.EmulatorProcess, client: Spawned, target: int, timeout_s: float) -> int | None:
    """Ctrl-C once the emulator holds `target` generations; the exit status after the drain (None:
    timed out)."""
    wait_for(
        lambda: emu.first_post()[1] >= target or not client.running(), timeout_s=timeout_s, every_s=POLL_S
    )
    client.interrupt()
    return client.wait(timeout_s)


def cli_bodies(bench: Bench, manifest: Path) -> Path:
    """The enqueue bodies of a manifest, one JSON object a line, from `batchgen plan --json`."""
    bodies = manifest.with_suffix(".cli-bodies.jsonl")
    if not bodies.exists():
        plan = subprocess.run(
            [PY, "-m", "batchgen", "plan", "--json", str(manifest)],
            cwd=bench.work,
            env=child_env(),
            capture_output=True,
            check=True,
            timeout=bench.timeout_s,
        )
        jobs = json.loads(plan.stdout)["jobs"]
        bodies.write_text("".join(json.dumps(job["request"]) + "\n" for job in jobs))
    return bodies


def ceiling_first_posts(bench: Bench, manifest: Path, reps: int) -> list[float]:
    bodies = cli_bodies(bench, manifest)
    times: list[float] = []
    with h.EmulatorProcess(ZERO) as emu:
        for rep in range(reps):
            out = bench.work / f"first-post-ceiling-{rep}"
            command = [
                PY,
                str(HERE / "ceiling.py"),
                str(bodies),
                "-o",
                str(out),
                "--api-base",
                emu.base_url,
                "--api-key",
                emu.api_key,
            ]
            emu.mark_posts()
            with Spawned(command, cwd=bench.work, log=bench.work / "first-post-ceiling.log") as client:
                seconds = first_post(emu, client, bench.timeout_s)
            if seconds is not None:
                times.append(seconds)
            if rep == 0:
                bench.note("first-post", f"ceiling: {bench.show(command, emu.base_url)}")
    return times


def fresh_and_resumed(bench: Bench, manifest: Path, reps: int) -> tuple[list[float], list[float], list[str]]:
    """Fresh runs timed to their first POST and killed, the last one stopped with Ctrl-C half-way
    instead; then resumes of that half-done run, each from a copy of it, timed and killed."""
    fresh: list[float] = []
    resumed: list[float] = []
    notes: list[str] = []
    with h.EmulatorProcess(ZERO) as emu:
        for rep in range(reps):
            out = bench.work / f"first-post-out-{rep}"
            command = run_command(manifest, out, emu, "-j", "64", "--downloads", "16")
            emu.mark_posts()
            before = emu.first_post()[1]
            with Spawned(command, cwd=bench.work, log=bench.work / "first-post.log") as client:
                seconds = first_post(emu, client, bench.timeout_s)
                if seconds is None:
                    notes.append(f"fresh run: no POST; {client.tail()}")
                    return fresh, resumed, notes
                fresh.append(seconds)
                if rep == reps - 1:
                    code = stop_half_way(emu, client, before + FIRST_POST_JOBS // 2, bench.timeout_s)
                    sent = emu.first_post()[1] - before
                    notes.append(
                        f"the half-done run: Ctrl-C once {FIRST_POST_JOBS // 2:,} jobs were enqueued; "
                        f"{sent:,} were when it exited ({code}) after its drain"
                    )
        bench.note("first-post", f"emulator: {emulator_command(ZERO)}")
        bench.note(
            "first-post",
            f"batchgen (fresh, then the same again to resume): {bench.show(command, emu.base_url)}",
        )
        half_done = bench.work / "first-post-half-done"
        shutil.copytree(out, half_done, symlinks=True)
        for _ in range(reps):
            shutil.rmtree(out)
            shutil.copytree(half_done, out, symlinks=True)
            emu.mark_posts()
            with Spawned(command, cwd=bench.work, log=bench.work / "first-post-resume.log") as client:
                seconds = first_post(emu, client, bench.timeout_s)
            if seconds is None:
                notes.append(f"resume: no POST; {client.tail()}")
                break
            resumed.append(seconds)
    return fresh, resumed, notes


def first_post_row(bench: Bench) -> Row:
    reps = 1 if bench.quick else 3
    manifest = bench.manifest(FIRST_POST_JOBS)
    fresh, resumed, notes = fresh_and_resumed(bench, manifest, reps)
    ceiling = ceiling_first_posts(bench, manifest, reps)
    figure = f"spawn -> first POST, {FIRST_POST_JOBS:,} jobs: fresh / resumed half-done"
    if not (fresh and resumed):
        return Row("first-post", figure, ("failed", "—", "—", "—"), "—", "≤ 0.5 s each", None, notes)
    a, b = statistics.median(fresh), statistics.median(resumed)
    ref = f"ceiling {statistics.median(ceiling):.2f} s" if ceiling else "—"
    for label, times in (("fresh", fresh), ("resumed", resumed), ("ceiling.py", ceiling)):
        notes.append(f"{label}: {', '.join(f'{t:.3f}' for t in times)} s")
    notes.append(
        "spawn (this process's monotonic clock) -> the first POST /api/ai/queue arriving at the emulator "
        "(its monotonic clock); each run is killed once its first POST arrived, except the fresh run "
        "that is stopped half-way to make the run the resumes start from (each resume from a copy of it)"
    )
    ratio = (
        f"{a / statistics.median(ceiling):.1f}x / {b / statistics.median(ceiling):.1f}x" if ceiling else "—"
    )
    return Row(
        "first-post",
        figure,
        (f"{a:.2f} s / {b:.2f} s", "—", ref, "—"),
        ratio + " ceiling",
        "≤ 0.5 s each",
        a <= 0.5 and b <= 0.5,
        notes,
    )


# -- rerun of an all-done run -------------------------------------------------------------------------


def rerun_row(bench: Bench) -> Row:
    manifest = bench.manifest(RERUN_JOBS)
    out = bench.work / "rerun-out"
    notes: list[str] = []
    figure = f"rerun of an all-done {RERUN_JOBS:,}-job run"
    goal = "≤ 3x expand-and-stat"
    with h.EmulatorProcess(ZERO) as emu:
        command = run_command(manifest, out, emu, "-j", "64", "--downloads", "16")
        first = run_measured(
            command, timeout_s=bench.timeout_s, cwd=bench.work, stdout=bench.work / "rerun.stdout"
        )
        if not first.ok:
            notes.append(f"the first run: {first.failure()}")
            return Row("rerun", figure, ("failed", "—", "—", "—"), "—", goal, None, notes)
        notes.append(f"the first run (not timed here): {first.wall_s:.1f} s")
        run_dir = out / manifest.stem
        floor = [PY, str(HERE / "rerun_floor.py"), str(manifest), str(run_dir), "--media-dir", "videos"]
        before = sum(emu.counts()["requests"].values())
        runs = alternate(
            {"batchgen rerun": command, "expand-and-stat": floor},
            reps=1 if bench.quick else 3,
            timeout_s=bench.timeout_s,
            cwd=bench.work,
        )
        sent = sum(emu.counts()["requests"].values()) - before
        bench.note("rerun", f"emulator: {emulator_command(ZERO)}")
        bench.note("rerun", f"batchgen, run twice (the second is timed): {bench.show(command, emu.base_url)}")
        bench.note("rerun", f"floor: {bench.show(floor)}")
    notes.append(f"requests sent by the {len(runs['batchgen rerun'])} rerun(s): {sent}")
    floor_runs: Sequence[Proc] = runs["expand-and-stat"]
    if floor_runs and floor_runs[-1].ok:
        notes.append(f"floor found: {floor_runs[-1].last_line()}")
    return ratio_row("rerun", figure, runs, goal=3.0, goal_text=goal, notes=notes)


if __name__ == "__main__":
    import run

    quick = ["--quick"] if "--quick" in sys.argv[1:] else []
    sys.exit(run.main(["--only", "help,plan-10,first-post,rerun", *quick]))
