"""Benchmark: runner overhead. Generations per second through a zero-latency emulator, CPU per
generation, memory per 10,000 tracked jobs, and (with --profile) where the time goes.

Run: python benchmarks/bench_overhead.py [--quick] [--jobs 2000] [--configs 8x4,64x16,256x32]
                                          [--memory-jobs 10000] [--no-cli] [--profile]

- Throughput: the runner runs in this process, wired as the CLI wires it (manifest -> plan -> journal
  -> OxenClient -> Runner; no run lock, plan.json or results files); the emulator (time_scale 0, so
  every generation finishes at once, results of about 5 KB) runs in a child process, on its own core
  and GIL like a remote service. Configurations are CONCURRENCYxDOWNLOADS. CPU per generation is this
  process's CPU time (all threads) during `runner.run()`, and the event-loop thread's alone.
- CLI: the same, through `python -m batchgen run` in a subprocess (progress lines on, as by
  default), timed from start to exit, and from the first submit to the last download (journal).
- Memory: a fresh process runs M jobs against a child emulator (peak RSS above the process with
  everything imported), then plans them again and prepares a Runner under tracemalloc.
- --profile: cProfile of the event-loop thread during one run, grouped by module, plus the top
  batchgen functions. Worker threads (file I/O, fsync) are not in it; use py-spy for those:
  `py-spy record --gil --threads -r 1000 -f raw -o out.txt -- python benchmarks/bench_overhead.py --no-cli`.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import multiprocessing as mp
import os
import pstats
import resource
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import _harness as h

from batchgen.emulator import EmulatorConfig

TARGET = 1000.0
ZERO = EmulatorConfig(time_scale=0.0, account_concurrency=1_000_000, keepalive_seconds=5.0)


# -- memory readings -------------------------------------------------------------------------------


def _proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def rss_kib() -> int:
    try:
        return _proc_status_kib("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS mark (Linux); a no-op where it is not allowed."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_kib() -> int:
    try:
        return _proc_status_kib("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# -- throughput ------------------------------------------------------------------------------------


def throughput(
    jobs: int, concurrency: int, downloads: int, profiler: cProfile.Profile | None = None
) -> dict[str, Any]:
    with h.temp_dir("overhead") as tmp:
        manifest = h.write_manifest(tmp, name="overhead", count=jobs)
        with h.EmulatorProcess(ZERO) as emu:
            options = h.run_options(emu.base_url, concurrency=concurrency, downloads=downloads)

            def attach(runner: Any) -> None:
                if profiler is None:
                    return
                run = runner.run

                async def profiled() -> Any:
                    profiler.enable()
                    try:
                        return await run()
                    finally:
                        profiler.disable()

                runner.run = profiled

            reset_peak_rss()
            rss_before = rss_kib()
            emu_cpu = emu.cpu_s()
            run = asyncio.run(
                h.run_batchgen(emu.base_url, emu.api_key, manifest, tmp / "run", options, on_runner=attach)
            )
            emu_cpu = emu.cpu_s() - emu_cpu
            requests = h.requests_by_endpoint(emu.snapshot()["requests"])
    return {
        "run": run,
        "emu_cpu": emu_cpu,
        "requests": requests,
        "rss_growth_kib": peak_rss_kib() - rss_before,
    }


def print_throughput(jobs: int, configs: list[tuple[int, int]]) -> list[dict[str, Any]]:
    print(f"Throughput: {jobs} jobs per configuration, emulator in a child process (time_scale 0)")
    print(
        f"{'C x downloads':>14}{'done':>7}{'wall':>9}{'gen/s':>8}{'CPU/gen':>10}{'loop thread':>13}"
        f"{'emulator':>10}{'peak RSS +':>12}   requests"
    )
    results = []
    for concurrency, downloads in configs:
        result = throughput(jobs, concurrency, downloads)
        run: h.BatchgenRun = result["run"]
        done = run.outcome.counts.get("done", 0)
        reqs = ", ".join(f"{k} {v}" for k, v in result["requests"].items())
        print(
            f"{f'{concurrency} x {downloads}':>14}{done:>7}{run.wall_s:>8.2f}s{done / run.wall_s:>8.0f}"
            f"{run.cpu_s / jobs * 1e3:>8.2f}ms{run.main_thread_cpu_s / jobs * 1e3:>11.2f}ms"
            f"{result['emu_cpu'] / jobs * 1e3:>8.2f}ms{result['rss_growth_kib'] / 1024:>9.1f} MiB   {reqs}"
        )
        results.append(result)
    best = max(r["run"].outcome.counts.get("done", 0) / r["run"].wall_s for r in results)
    print(
        f"best: {best:,.0f} generations/s (target >= {TARGET:,.0f}). CPU/gen is this process (all threads); "
        "at 100% of one core it caps gen/s at 1000 / (CPU ms per gen)."
    )
    return results


# -- the CLI -----------------------------------------------------------------------------------------


def cli_run(jobs: int, concurrency: int, downloads: int) -> None:
    with h.temp_dir("overhead-cli") as tmp:
        manifest = h.write_manifest(tmp, name="cli", count=jobs)
        with h.EmulatorProcess(ZERO) as emu:
            env = {
                k: v
                for k, v in os.environ.items()
                if k not in ("OXEN_API_KEY", "OXEN_API_BASE") and "proxy" not in k.lower()
            }
            command = [
                sys.executable,
                "-m",
                "batchgen",
                "run",
                str(manifest),
                "-o",
                str(tmp / "out"),
                "--api-base",
                emu.base_url,
                "-j",
                str(concurrency),
                "--downloads",
                str(downloads),
            ]
            env["OXEN_API_KEY"] = emu.api_key
            started = time.monotonic()
            proc = subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True, timeout=300)
            wall = time.monotonic() - started
        journal = tmp / "out" / "cli" / "state.sqlite"
        with sqlite3.connect(journal) as conn:
            first, last, done = conn.execute(
                "SELECT min(submitted_at), max(downloaded_at), sum(state = 'done') FROM jobs"
            ).fetchone()
    print(
        f"CLI: `batchgen run -j {concurrency} --downloads {downloads}` ({jobs} jobs, progress lines on): "
        f"exit {proc.returncode}, {done} done, {wall:.2f} s from start to exit "
        f"({jobs / wall:,.0f} gen/s), {last - first:.2f} s from first submit to last download "
        f"({jobs / (last - first):,.0f} gen/s)"
    )
    if proc.returncode != 0:
        print(proc.stderr[-2000:])


# -- memory ----------------------------------------------------------------------------------------


def _memory_child(jobs: int, conn: Connection) -> None:
    """Fresh process: peak RSS while running `jobs` jobs, then tracemalloc of a plan and a prepared runner."""
    from batchgen.client.api import OxenClient
    from batchgen.journal.store import Journal
    from batchgen.run.runner import Runner

    out: dict[str, float] = {}
    with h.temp_dir("memory") as tmp:
        manifest = h.write_manifest(tmp, name="memory", count=jobs)
        out["rss_start"] = rss_kib()
        reset_peak_rss()
        with h.EmulatorProcess(ZERO) as emu:
            options = h.run_options(emu.base_url, concurrency=64, downloads=16)
            run = asyncio.run(h.run_batchgen(emu.base_url, emu.api_key, manifest, tmp / "run", options))
            out["done"] = run.outcome.counts.get("done", 0)
            out["wall"] = run.wall_s
            out["rss_peak_run"] = peak_rss_kib()
        del run
        tracemalloc.start()
        plan = asyncio.run(h.load_plan(manifest, None))
        out["plan_traced"] = tracemalloc.get_traced_memory()[0]
        (tmp / "prepared").mkdir()
        journal = Journal.open(tmp / "prepared")
        client = OxenClient("http://127.0.0.1:9", "unused")
        runner = Runner(
            plan, tmp / "prepared", journal, client, h.run_options("http://127.0.0.1:9", concurrency=64)
        )
        runner._prepare()  # what run() does first: journal rows and the in-memory mirror
        out["prepared_traced"] = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        journal.close()
    conn.send(out)


def memory(jobs: int) -> None:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_memory_child, args=(jobs, child))
    proc.start()
    out = parent.recv() if parent.poll(600) else None
    proc.join(30)
    if out is None:
        print("memory: the measuring process did not answer")
        return
    per = 10_000 / jobs
    mib = 1024 * 1024
    print(f"Memory ({jobs:,} jobs, in a fresh process; figures scaled to 10,000 jobs):")
    print(
        f"  run of all {jobs:,} jobs (C 64 x 16 downloads, {out['done']:.0f} done in {out['wall']:.1f} s, "
        f"{out['done'] / out['wall']:,.0f} gen/s): peak RSS {out['rss_peak_run'] / 1024:.0f} MiB, "
        f"{(out['rss_peak_run'] - out['rss_start']) / 1024 * per:.1f} MiB per 10,000 jobs above the "
        f"{out['rss_start'] / 1024:.0f} MiB of the process with everything imported"
    )
    print(
        f"  of which the plan (tracemalloc):            {out['plan_traced'] / mib * per:7.1f} MiB per 10,000 jobs"
    )
    print(
        f"  plan + journal + prepared runner (traced):  {out['prepared_traced'] / mib * per:7.1f} MiB per 10,000 jobs"
    )


# -- profile ---------------------------------------------------------------------------------------


def profile(jobs: int, concurrency: int, downloads: int) -> None:
    profiler = cProfile.Profile()
    result = throughput(jobs, concurrency, downloads, profiler)
    run: h.BatchgenRun = result["run"]
    stats = pstats.Stats(profiler)
    by_module: collections.Counter[str] = collections.Counter()
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        by_module[_module(filename, name)] += tottime
    total = sum(by_module.values())
    print(
        f"Profile (cProfile, event-loop thread, {jobs} jobs, C {concurrency} x {downloads} downloads; "
        f"{jobs / run.wall_s:,.0f} gen/s under the profiler): {total / jobs * 1e3:.2f} ms per generation"
    )
    print("  self time by module:")
    for module, seconds in by_module.most_common(18):
        print(f"  {seconds / jobs * 1e6:8.0f} us/gen {seconds / total * 100:5.1f}%  {module}")
    print("  batchgen functions by cumulative time (per generation):")
    rows = [
        (ct, tt, nc, f"{Path(fn).name}:{line}({name})")
        for (fn, line, name), (_cc, nc, tt, ct, _c) in stats.stats.items()
        if "/batchgen/" in fn and "/emulator/" not in fn
    ]  # type: ignore[attr-defined]
    for ct, tt, nc, label in sorted(rows, reverse=True)[:22]:
        print(
            f"  {ct / jobs * 1e6:8.0f} us cum {tt / jobs * 1e6:6.0f} us self {nc / jobs:6.1f} entries  {label}"
        )


def _module(filename: str, name: str) -> str:
    if filename == "~":
        return f"builtin {name}"
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1].split("/")[0]
    if "/batchgen/" in filename:
        return "batchgen/" + filename.split("/batchgen/")[1]
    if "/lib/python3" in filename:
        return "stdlib " + filename.split("/lib/python3")[1].split("/", 2)[1].removesuffix(".py")
    return filename


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (under 30 s)")
    parser.add_argument("--jobs", type=int)
    parser.add_argument("--configs", help="CONCURRENCYxDOWNLOADS, comma-separated")
    parser.add_argument("--memory-jobs", type=int)
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI subprocess run")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--profile", action="store_true", help="also profile one run (64 x 16)")
    args = parser.parse_args(argv)
    jobs = args.jobs or (500 if args.quick else 2000)
    spec = args.configs or ("64x16" if args.quick else "8x4,64x16,256x32")
    configs = [tuple(int(x) for x in part.lower().split("x")) for part in spec.split(",")]
    print_throughput(jobs, configs)  # type: ignore[arg-type]
    print()
    if not args.no_cli and not args.quick:
        cli_run(jobs, 64, 16)
        print()
    if not args.no_memory:
        memory(args.memory_jobs or (2000 if args.quick else 10_000))
        print()
    if args.profile:
        profile(jobs, 64, 16)
    return 0


if __name__ == "__main__":
    sys.exit(main())
