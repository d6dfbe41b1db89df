"""One command, one table: batchgen, through its real CLI, beside the documented 5 s poller and a
minimal ceiling script, each against a fresh emulator running in its own process.

Run: python benchmarks/run.py [--quick] [--only ROW[,ROW...]] [--timeout S] [--tmp-dir DIR] [--keep]
     python benchmarks/run.py --soak [--soak-minutes 60] [--soak-reconnect-minutes 10]   (the soak alone)

Rows (name or number for --only):
  1 gen-2k    generations/s, 2,000 jobs, -j 64 --downloads 16, zero-latency emulator (time scale 0)
  2 gen-10k   the same with 10,000 jobs (skipped by --quick)
  3 rss       peak RSS of each client process per 1,000 jobs: 2,000 vs 10,000 jobs (--quick: 500 vs 2,000)
  4 plan      `batchgen plan --json` of 100,000 jobs: wall time and peak RSS, beside plan_minimal.py
  5 download  one 500 MB download: the CLI from its result GET to its exit, vs `curl -o` (then `sync FILE`;
              and, in the notes, curl then `openssl dgst -sha256` then sync)
  6 requests  HTTP requests per generation, counted by the emulator: 24 jobs whose renders take
              1-5 min, compressed 100x (time scale 0.01), -j 8
  7 latency   a generation finishing -> its result GET arriving, p50, from row 6's runs
  8 deliver   peak RSS of one run with a 300 MB result delivered to a repository (workspace, chunked
              upload) beside the same run without delivery
Issue 19's rows (how fast it starts, resumes and keeps the slots full), each beside its reference:
  9 help        `batchgen --help` vs `python -c pass`
 10 plan-10     `batchgen plan` of a 10-job manifest, offline, vs `python -c "import yaml, jsonschema"`
 11 first-post  spawn -> first POST arriving, 10,000 jobs, fresh and resuming a half-done run
              (benchmarks/bench_start.py; beside benchmarks/ceiling.py's)
 12 rerun       rerun of an all-done 20,000-job run vs benchmarks/rerun_floor.py (expand and stat)
 13 makespan    makespan / the ideal schedule (benchmarks/ideal.py): C = 20, 200 jobs of 1-5 min
              renders compressed 20x, a 429 storm and a dropped event stream (benchmarks/bench_makespan.py)
 14 refill      a generation finishing -> the POST that takes its slot, p95 (row 13's run)
    soak        --soak only: RSS growth, CPU while waiting, requests per generation over a long run
              (benchmarks/bench_soak.py)

How it measures:
- Every client is a subprocess (`python -m batchgen run ...`, `benchmarks/ceiling.py`,
  `benchmarks/poller.py`), timed from spawn to exit; its own peak RSS comes from `os.wait4`. Rows that
  watch a client while it runs (first-post, makespan, soak) spawn it directly and read /proc.
  Every subprocess is killed (its whole process group) after --timeout seconds.
- The emulator runs in a child process (`_harness.EmulatorProcess`), a fresh one per client run, so
  its counters (requests per route) and timeline marks (finished, result requested) belong to one
  client. The equivalent `python -m batchgen.emulator` command is printed with each row.
- The ceiling and the poller send the bodies batchgen's plan holds for the same manifest.
- Inputs and outputs live in one temporary directory, removed at the end (kept with --keep).
- Every client runs from compiled bytecode, as an installed package does: the code is compiled
  first, and PYTHONDONTWRITEBYTECODE is not passed on.

Prints the environment, the table, notes per row and the commands that reproduce each row.
Asserts nothing; exit status 0 unless a row could not be measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import _harness as h
import aiohttp
import bench_makespan
import bench_soak
import bench_start
import yaml
from _rows import (
    HERE,
    MB,
    MIB,
    PY,
    SHOWN_BASE,
    Proc,
    Row,
    compile_everything,
    emulator_command,
    four,
    run_measured,
)

from batchgen.emulator import EmulatorConfig, LatencyConfig

ZERO = EmulatorConfig(time_scale=0.0, account_concurrency=1_000_000)
CLIENTS = ("batchgen", "poller", "ceiling", "ceiling+fsync")
ROWS = (
    "gen-2k", "gen-10k", "rss", "plan", "download", "requests", "latency", "deliver",
    "help", "plan-10", "first-post", "rerun", "makespan", "refill",
)  # fmt: skip
SOAK = "soak"  # only with --soak
POLL_S = 5.0  # the documented poller's interval, simulated seconds
RENDER_SCALE = 0.01  # row 6: 1-5 min renders in 0.6-3 s
RENDERS = LatencyConfig(queue_wait_median_seconds=3.0, video_render_median_seconds=165.0, latency_sigma=0.3)


# -- the clients against the emulator -----------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    jobs: int
    concurrency: int
    downloads: int
    emulator: EmulatorConfig
    batchgen_flags: tuple[str, ...] = ()

    @property
    def poll_interval_s(self) -> float:
        """The 5 s poller's interval in real seconds (compressed like the emulator's time)."""
        return POLL_S * self.emulator.time_scale


@dataclass
class ClientRun:
    client: str
    scenario: Scenario
    proc: Proc
    requests: dict[str, int]  # per route, counted by the emulator
    done: int  # generations whose result was requested
    startup_s: float  # spawn -> first enqueue arriving at the emulator
    window_s: float  # first enqueue arriving -> last result GET arriving (emulator)
    delays: list[float]  # per generation: finished -> its result GET arriving, seconds
    renders: list[float]  # per generation: render time, simulated seconds
    emulator_cpu_s: float  # the emulator process's CPU time during the run
    shown: str  # the command as printed
    summary: dict[str, Any] = field(default_factory=dict)  # the client's own JSON line (not batchgen)

    @property
    def ok(self) -> bool:
        return self.proc.ok and self.done == self.scenario.jobs

    @property
    def rate(self) -> float:
        return self.done / self.proc.wall_s

    @property
    def per_generation(self) -> float:
        return sum(self.requests.values()) / max(1, self.done)

    def describe(self) -> str:
        if not self.ok:
            return f"{self.client}: {self.done} of {self.scenario.jobs} done; {self.proc.failure()}"
        routes = ", ".join(f"{route} {n:,}" for route, n in self.requests.items())
        return (
            f"{self.client}: {self.done:,} done in {self.proc.wall_s:.2f} s from start to exit "
            f"({self.rate:,.0f}/s); start -> first enqueue {self.startup_s:.2f} s; "
            f"first enqueue -> last result GET {self.window_s:.2f} s "
            f"({self.done / self.window_s:,.0f}/s); CPU {self.proc.cpu_s / self.done * 1e3:.2f} ms/gen "
            f"(emulator {self.emulator_cpu_s / self.done * 1e3:.2f} ms/gen); peak RSS "
            f"{self.proc.peak_rss_kib / 1024:.0f} MiB; requests: {routes}"
        )


class Bench:
    def __init__(self, work: Path, timeout_s: float, quick: bool) -> None:
        self.work = work
        self.timeout_s = timeout_s
        self.quick = quick
        self._inputs: dict[int, tuple[Path, Path]] = {}
        self._runs: dict[tuple[str, str], ClientRun] = {}
        self._first_row: dict[tuple[str, str], str] = {}  # which row ran it first
        self.commands: dict[str, list[str]] = {}  # row key -> commands that reproduce it
        self.cache: dict[str, Any] = {}  # what rows measured together share (makespan, refill)
        self.soak_minutes = 60.0
        self.soak_reconnect_minutes = 10.0

    def show(self, command: Sequence[str], base_url: str = "") -> str:
        """A command as printed: the emulator at SHOWN_BASE, paths relative to the work directory."""
        text = shlex.join(["python" if part == PY else part for part in command])
        text = text.replace(str(HERE) + "/", "benchmarks/").replace(str(self.work) + "/", "$WORK/")
        return text.replace(base_url, SHOWN_BASE) if base_url else text

    def note(self, row: str, line: str) -> None:
        lines = self.commands.setdefault(row, [])
        if line not in lines:
            lines.append(line)

    def manifest(self, jobs: int) -> Path:
        """A manifest of `jobs` distinct 5 s video jobs (one matrix axis of `jobs` values)."""
        path = self.work / f"jobs{jobs}.yaml"
        return path if path.exists() else h.write_manifest(self.work, name=f"jobs{jobs}", count=jobs)

    def inputs(self, jobs: int) -> tuple[Path, Path]:
        """The manifest of `jobs` jobs, and the enqueue bodies batchgen plans for it."""
        if jobs not in self._inputs:
            manifest = self.manifest(jobs)
            bodies = self.work / f"jobs{jobs}.bodies.jsonl"
            plan = asyncio.run(h.load_plan(manifest, None))
            bodies.write_text("".join(json.dumps(body) + "\n" for body in h.plan_bodies(plan)))
            self._inputs[jobs] = manifest, bodies
        return self._inputs[jobs]

    def command(self, client: str, sc: Scenario, base_url: str, api_key: str, out: Path) -> list[str]:
        manifest, bodies = self.inputs(sc.jobs)
        api = ["--api-base", base_url, "--api-key", api_key]
        if client == "batchgen":
            return [
                PY,
                "-m",
                "batchgen",
                "run",
                str(manifest),
                "-o",
                str(out),
                *api,
                "--no-progress",
                "-j",
                str(sc.concurrency),
                "--downloads",
                str(sc.downloads),
                *sc.batchgen_flags,
            ]
        if client == "poller":
            return [
                PY,
                str(HERE / "poller.py"),
                str(bodies),
                "-o",
                str(out),
                *api,
                "-j",
                str(sc.concurrency),
                "--interval",
                f"{sc.poll_interval_s:g}",
                "--timeout",
                f"{self.timeout_s:g}",
            ]
        fsync = ["--fsync"] if client == "ceiling+fsync" else []
        return [
            PY,
            str(HERE / "ceiling.py"),
            str(bodies),
            "-o",
            str(out),
            *api,
            "-j",
            str(sc.concurrency),
            "--downloads",
            str(sc.downloads),
            *fsync,
            "--timeout",
            f"{self.timeout_s:g}",
        ]

    def client_run(self, client: str, sc: Scenario, row: str) -> ClientRun:
        """One client's run of a scenario against a fresh emulator process (cached per scenario)."""
        if (client, sc.name) not in self._runs:
            self.inputs(sc.jobs)  # planned before the emulator starts
            out = self.work / f"out-{sc.name}-{client}"
            with h.EmulatorProcess(sc.emulator) as emu:
                command = self.command(client, sc, emu.base_url, emu.api_key, out)
                emulator_cpu = emu.cpu_s()
                proc = run_measured(
                    command,
                    timeout_s=self.timeout_s,
                    cwd=self.work,
                    stdout=self.work / f"{sc.name}-{client}.stdout",
                )
                emulator_cpu = emu.cpu_s() - emulator_cpu
                requests = h.requests_by_endpoint(emu.snapshot()["requests"])
                records = emu.records()
            shutil.rmtree(out, ignore_errors=True)
            shown = self.show(command, emu.base_url)
            self._runs[client, sc.name] = self._client_run(
                client, sc, proc, requests, records, shown, emulator_cpu
            )
        run = self._runs[client, sc.name]
        first = self._first_row.setdefault((client, sc.name), row)
        if first != row:
            self.note(row, f"{client}: the same run as in [{first}]")
            return run
        self.note(row, f"emulator (a fresh one per client): {emulator_command(sc.emulator)}")
        self.note(row, f"{client}: {run.shown}")
        return run

    def _client_run(
        self,
        client: str,
        sc: Scenario,
        proc: Proc,
        requests: dict[str, int],
        records: list[Any],
        shown: str,
        emulator_cpu_s: float,
    ) -> ClientRun:
        # records: (generation_id, status, enqueued_at, started_at, completed_at, marks)
        fetched = [r for r in records if r[5].first_download is not None]
        first_enqueue = window = 0.0
        if fetched:
            first_enqueue = min(r[2] for r in records) - proc.started_wall  # since spawn (wall clock)
            last_get = max(r[5].first_download for r in fetched) - (proc.finished_mono - proc.wall_s)
            window = last_get - first_enqueue
        delays = [r[5].first_download - r[5].terminal for r in fetched if r[5].terminal is not None]
        scale = sc.emulator.time_scale
        renders = [(r[4] - r[3]) / scale for r in records if scale and r[3] is not None and r[4] is not None]
        summary: dict[str, Any] = {}
        if client != "batchgen" and proc.ok:
            with contextlib.suppress(ValueError):
                summary = json.loads(proc.last_line())
        return ClientRun(
            client,
            sc,
            proc,
            requests,
            len(fetched),
            first_enqueue,
            window,
            delays,
            renders,
            emulator_cpu_s,
            shown,
            summary,
        )


# -- rows ---------------------------------------------------------------------------------------------


def throughput_scenario(jobs: int) -> Scenario:
    return Scenario(f"zero-{jobs}", jobs, 64, 16, ZERO)


def throughput_row(bench: Bench, key: str, jobs: int) -> Row:
    runs = {c: bench.client_run(c, throughput_scenario(jobs), key) for c in CLIENTS}
    cells = four([f"{r.rate:,.0f}/s" if r.ok else "failed" for r in runs.values()])
    bg, ref = runs["batchgen"], runs["ceiling+fsync"]
    measured = bg.ok and ref.ok
    ratio = bg.rate / ref.rate if measured else 0.0
    notes = [r.describe() for r in runs.values()]
    notes.append(
        "gen/s = jobs / seconds from spawn to exit (interpreter start, planning and the last "
        f"write included); poller interval {POLL_S:g} s x time scale 0 = 0 s"
    )
    if runs["ceiling"].ok and runs["ceiling"].emulator_cpu_s:
        cap = runs["ceiling"].done / runs["ceiling"].emulator_cpu_s
        notes.append(
            f"the emulator needs {1e3 / cap:.2f} ms of CPU per generation: on its own core it "
            f"serves at most about {cap:,.0f} generations/s to any client"
        )
    return Row(
        key,
        f"generations/s, {jobs:,} jobs (-j 64, 16 downloads, time scale 0)",
        cells,
        f"{ratio:.2f}x ceiling+fsync" if measured else "—",
        "≥ 1,000/s and ≥ 0.8x ceiling+fsync",
        (bg.rate >= 1000 and ratio >= 0.8) if measured else None,
        notes,
    )


def rss_row(bench: Bench) -> Row:
    small, big = (500, 2000) if bench.quick else (2000, 10_000)
    notes, cells, per = [], [], {}
    for client in CLIENTS:
        a = bench.client_run(client, throughput_scenario(small), "rss")
        b = bench.client_run(client, throughput_scenario(big), "rss")
        if not (a.proc.ok and b.proc.ok):
            cells.append("failed")
            continue
        per[client] = (b.proc.peak_rss_kib - a.proc.peak_rss_kib) * 1024 / MB / ((big - small) / 1000)
        cells.append(f"{per[client]:.2f} MB")
        notes.append(
            f"{client}: peak RSS {a.proc.peak_rss_kib / 1024:.1f} MiB at {small:,} jobs, "
            f"{b.proc.peak_rss_kib / 1024:.1f} MiB at {big:,} jobs"
        )
    notes.append(
        f"per 1,000 jobs = (peak at {big:,} - peak at {small:,}) / {(big - small) / 1000:g}, "
        "so the fixed start-up memory cancels out"
    )
    value = per.get("batchgen")
    return Row(
        "rss",
        f"peak RSS per 1,000 jobs ({small:,} vs {big:,} jobs)",
        four(cells),
        "—",
        "≤ 1 MB per 1,000 jobs",
        None if value is None else value <= 1.0,
        notes,
    )


def plan_row(bench: Bench) -> Row:
    jobs = 100_000
    manifest = bench.manifest(jobs)
    runs = {}
    for name, command in (
        ("batchgen", [PY, "-m", "batchgen", "plan", "--json", str(manifest)]),
        ("minimal", [PY, str(HERE / "plan_minimal.py"), str(manifest)]),
    ):
        out = bench.work / f"plan-{name}.json"
        runs[name] = run_measured(command, timeout_s=bench.timeout_s, cwd=bench.work, stdout=out)
        bench.note("plan", f"{name}: {bench.show(command)} > plan.json")
    bg, ref = runs["batchgen"], runs["minimal"]
    notes = [
        f"{name}: {p.wall_s:.2f} s, peak RSS {p.peak_rss_kib / 1024:.0f} MiB, "
        f"{p.stdout.stat().st_size / MB:.1f} MB of JSON"
        if p.ok
        else f"{name}: {p.failure()}"
        for name, p in runs.items()
    ]
    for p in runs.values():
        p.stdout.unlink(missing_ok=True)
    if not (bg.ok and ref.ok):
        return Row("plan", "plan --json, 100,000 jobs", ("failed", "—", "—", "—"), "—", "", None, notes)
    time_ratio, rss_ratio = bg.wall_s / ref.wall_s, bg.peak_rss_kib / ref.peak_rss_kib
    met = bg.wall_s < 2 and bg.peak_rss_kib * 1024 < 300 * MIB and time_ratio <= 2 and rss_ratio <= 2
    notes.append("the minimal script (benchmarks/plan_minimal.py) sits in the ceiling column")
    return Row(
        "plan",
        "plan --json, 100,000 jobs: wall, peak RSS",
        (
            f"{bg.wall_s:.2f} s, {bg.peak_rss_kib / 1024:.0f} MiB",
            "—",
            f"{ref.wall_s:.2f} s, {ref.peak_rss_kib / 1024:.0f} MiB",
            "—",
        ),
        f"{time_ratio:.1f}x time, {rss_ratio:.1f}x RSS",
        "< 2 s, < 300 MiB, ≤ 2x minimal",
        met,
        notes,
    )


def result_url(base_url: str, api_key: str, generation_id: str) -> str:
    request = urllib.request.Request(
        f"{base_url}/api/ai/queue/{generation_id}", headers={"Authorization": f"Bearer {api_key}"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as answer:
        return str(json.load(answer)["result_url"])


def sha256_floor(size: int) -> str:
    """How fast one core hashes `size` bytes: a ceiling for a client that verifies as it downloads."""
    block, digest = bytes(range(256)) * 4096, hashlib.sha256()
    started = time.perf_counter()
    for _ in range(size // len(block)):
        digest.update(block)
    rate = size / MB / (time.perf_counter() - started)
    return f"sha256 alone, one core, no I/O: {rate:,.0f} MB/s (batchgen hashes each download as it arrives)"


def download_row(bench: Bench) -> Row:
    size, reps = 500 * MB, (1 if bench.quick else 3)
    config = replace(ZERO, result_size_bytes=size)
    sc = Scenario("download", 1, 1, 1, config)
    bench.inputs(1)
    verified = "curl+sha256+sync"
    times: dict[str, list[float]] = {"batchgen": [], "curl": [], "curl+sync": [], verified: []}
    notes: list[str] = []
    with h.EmulatorProcess(config) as emu:
        bench.note("download", f"emulator: {emulator_command(config)}")
        for rep in range(reps):
            out = bench.work / "download-out"
            command = bench.command("batchgen", sc, emu.base_url, emu.api_key, out)
            seen = {r[0] for r in emu.records()}
            proc = run_measured(
                command, timeout_s=bench.timeout_s, cwd=bench.work, stdout=bench.work / "download.stdout"
            )
            fresh = [r for r in emu.records() if r[0] not in seen and r[5].first_download is not None]
            files = list(out.rglob("*.mp4"))
            shutil.rmtree(out, ignore_errors=True)
            if not (proc.ok and fresh and files):
                notes.append(f"batchgen: {proc.failure()}")
                break
            times["batchgen"].append(proc.finished_mono - fresh[0][5].first_download)
            notes.append(
                f"batchgen run {rep + 1}: {proc.wall_s:.2f} s from spawn to exit, "
                f"{times['batchgen'][-1]:.2f} s from its result GET to exit"
            )
            bench.note("download", f"batchgen: {bench.show(command, emu.base_url)}")
            url = result_url(emu.base_url, emu.api_key, fresh[0][0])
            for name, script in (
                ("curl", 'curl -s -f -o "$1" "$2"'),
                ("curl+sync", 'curl -s -f -o "$1" "$2" && sync "$1"'),
                # What batchgen promises of a file: whole, checked against its sha256, on disk. OpenSSL's
                # sha256 is the one Python's hashlib uses (coreutils' sha256sum is 4x slower here).
                (verified, 'curl -s -f -o "$1" "$2" && openssl dgst -sha256 "$1" >/dev/null && sync "$1"'),
            ):
                if name == verified and shutil.which("openssl") is None:
                    continue
                target = bench.work / f"{name}.mp4"
                shell = ["sh", "-c", script, "sh", str(target), url]
                p = run_measured(
                    shell, timeout_s=bench.timeout_s, cwd=bench.work, stdout=bench.work / "curl.out"
                )
                got = target.stat().st_size if target.exists() else 0
                target.unlink(missing_ok=True)
                if p.ok and got == size:
                    times[name].append(p.wall_s)
                else:
                    notes.append(f"{name}: {p.failure()} ({got:,} bytes)")
                shown = script.replace('"$1"', "FILE").replace('"$2"', "URL")
                bench.note("download", f"{name}: {shown}   (URL: the result_url of batchgen's generation)")
    if not times[verified]:
        del times[verified]
    if not all(times.values()):
        return Row("download", "one 500 MB download", ("failed", "—", "—", "—"), "—", "", None, notes)
    rate = {name: size / MB / statistics.median(values) for name, values in times.items()}
    ratio = rate["batchgen"] / rate["curl+sync"]
    notes.append(sha256_floor(size))
    if verified in rate:
        notes.append(
            f"curl, then openssl dgst -sha256, then sync (whole, hashed and on disk, as batchgen's file is): "
            f"{rate[verified]:,.0f} MB/s; batchgen is {rate['batchgen'] / rate[verified]:.2f}x that"
        )
    notes.append(
        f"median of {reps} run(s) each, alternating; batchgen: from its result GET arriving at the emulator "
        "(timeline mark) to the CLI's exit (hash, fsync, rename, journal, results files); curl: "
        "spawn to exit; `sync FILE` flushes that file only"
    )
    return Row(
        "download",
        "one 500 MB download on loopback, MB/s",
        (
            f"{rate['batchgen']:,.0f} MB/s",
            "—",
            f"curl {rate['curl']:,.0f} MB/s",
            f"curl+sync {rate['curl+sync']:,.0f} MB/s",
        ),
        f"{ratio:.2f}x curl+sync",
        "≥ 0.9x curl then sync",
        ratio >= 0.9,
        notes,
    )


def requests_scenario() -> Scenario:
    config = EmulatorConfig(time_scale=RENDER_SCALE, seed=1, account_concurrency=8, latency=RENDERS)
    reconcile = 300 * RENDER_SCALE
    return Scenario("renders", 24, 8, 4, config, ("--reconcile-interval", f"{reconcile:g}"))


def requests_row(bench: Bench) -> Row:
    sc = requests_scenario()
    runs = {c: bench.client_run(c, sc, "requests") for c in ("batchgen", "poller", "ceiling")}
    cells = [f"{r.per_generation:.2f}" if r.ok else "failed" for r in runs.values()]
    bg, ceiling = runs["batchgen"], runs["ceiling"]
    renders = bg.renders or ceiling.renders
    notes = [r.describe() for r in runs.values()]
    if renders:
        notes.append(
            f"renders (simulated): min {min(renders) / 60:.1f} min, median "
            f"{statistics.median(renders) / 60:.1f} min, max {max(renders) / 60:.1f} min; batchgen "
            f"--reconcile-interval {300 * RENDER_SCALE:g} (300 s x time scale {RENDER_SCALE})"
        )
    period = runs["poller"].summary.get("poll_period_s")
    if period:
        notes.append(
            f"poller: achieved period {period / RENDER_SCALE:.2f} s simulated (interval "
            f"{POLL_S:g} s x {RENDER_SCALE})"
        )
    ideal = 2 + 1 / sc.jobs
    measured = bg.ok and ceiling.ok
    return Row(
        "requests",
        f"requests per generation, {sc.jobs} jobs of 1-5 min renders, -j 8",
        (cells[0], cells[1], cells[2], "—"),
        f"{bg.per_generation / ceiling.per_generation:.2f}x ceiling" if measured else "—",
        f"≤ 2.05 (2 + 1/{sc.jobs} = {ideal:.2f})",
        bg.per_generation <= 2.05 if measured else None,
        notes,
    )


def latency_row(bench: Bench) -> Row:
    sc = requests_scenario()
    runs = {c: bench.client_run(c, sc, "latency") for c in ("batchgen", "poller", "ceiling")}
    p50 = {c: h.percentile(r.delays, 50) * 1e3 if r.delays else None for c, r in runs.items()}
    cells = [f"{v:.1f} ms" if v is not None else "failed" for v in p50.values()]
    notes = [f"{c}: {h.summary_ms(r.delays)} ({len(r.delays)} generations)" for c, r in runs.items()]
    notes.append(
        "measured by the emulator: the generation finishing (and its event published) -> the "
        "first GET of its result arriving; the same runs as row 'requests'"
    )
    bg, ceiling = p50["batchgen"], p50["ceiling"]
    return Row(
        "latency",
        "generation finished -> download started, p50",
        (cells[0], cells[1], cells[2], "—"),
        f"{bg / ceiling:.1f}x ceiling" if bg and ceiling else "—",
        "p50 ≤ 20 ms",
        None if bg is None else bg <= 20,
        notes,
    )


def deliver_row(bench: Bench) -> Row:
    """Peak RSS of `batchgen run` with one 300 MB result, delivered (deliver: with create) and not:
    delivery streams the file from disk a piece at a time, so its memory must not grow with the size."""
    size, reps = 300 * MB, (1 if bench.quick else 2)
    config = replace(ZERO, result_size_bytes=size)
    plain = bench.manifest(1)
    delivering = bench.work / "deliver1.yaml"
    data = yaml.safe_load(plain.read_text())
    data["deliver"] = {"repo": "bench/deliveries", "path": "drops", "create": True}
    delivering.write_text(yaml.safe_dump(data, sort_keys=False))
    peaks: dict[str, list[float]] = {"without": [], "with": []}
    notes: list[str] = []
    for rep in range(reps):
        for label, manifest in (("without", plain), ("with", delivering)):
            with h.EmulatorProcess(config) as emu:
                out = bench.work / f"deliver-out-{label}"
                command = [
                    PY, "-m", "batchgen", "run", str(manifest), "-o", str(out),
                    "--api-base", emu.base_url, "--api-key", emu.api_key, "--no-progress",
                ]  # fmt: skip
                proc = run_measured(
                    command, timeout_s=bench.timeout_s, cwd=bench.work, stdout=bench.work / "deliver.stdout"
                )
                commits = emu.snapshot().get("commits", 0)
                shutil.rmtree(out, ignore_errors=True)
                if rep == 0:
                    bench.note("deliver", f"emulator: {emulator_command(config)}")
                    bench.note("deliver", f"batchgen {label} delivery: {bench.show(command, emu.base_url)}")
            if not proc.ok or (label == "with" and not commits):
                notes.append(f"{label} delivery: {proc.failure()} ({commits} commits)")
                return Row("deliver", "peak RSS delivering a 300 MB result", ("failed", "—", "—", "—"), "—",
                           "", None, notes)  # fmt: skip
            peaks[label].append(proc.peak_rss_kib / 1024)
            notes.append(
                f"run {rep + 1} {label} delivery: peak RSS {peaks[label][-1]:.0f} MiB, {proc.wall_s:.1f} s"
            )
    without, with_ = statistics.median(peaks["without"]), statistics.median(peaks["with"])
    ratio = with_ / without
    notes.append(
        "median of the runs; each run against a fresh emulator process; RSS of the batchgen process only"
    )
    return Row(
        "deliver",
        "peak RSS, one 300 MB result delivered vs not",
        (f"{with_:.0f} MiB vs {without:.0f} MiB", "—", "—", "—"),
        f"{ratio:.2f}x without delivery",
        "≤ 1.2x without delivery",
        ratio <= 1.2,
        notes,
    )


# -- the table ------------------------------------------------------------------------------------------


def environment(work: Path) -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            cpu,
        )
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}, batchgen {commit or '?'}, "
        f"work dir {work.parent}, load average {load}"
    )


def print_table(rows: list[Row]) -> None:
    header = (
        "figure",
        "batchgen",
        "5 s poller",
        "ceiling / reference",
        "ceiling+fsync",
        "ratio",
        "goal",
        "met",
    )
    lines = [
        (r.figure, *r.cells, r.ratio, r.goal, {True: "yes", False: "no", None: "n/a"}[r.met]) for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    for line in [header, tuple("-" * w for w in widths), *lines]:
        print(" | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


BUILDERS: dict[str, Callable[[Bench], Row]] = {
    "gen-2k": lambda b: throughput_row(b, "gen-2k", 2000),
    "gen-10k": lambda b: throughput_row(b, "gen-10k", 10_000),
    "rss": rss_row,
    "plan": plan_row,
    "download": download_row,
    "requests": requests_row,
    "latency": latency_row,
    "deliver": deliver_row,
    "help": bench_start.help_row,
    "plan-10": bench_start.plan_small_row,
    "first-post": bench_start.first_post_row,
    "rerun": bench_start.rerun_row,
    "makespan": bench_makespan.makespan_row,
    "refill": bench_makespan.refill_row,
    SOAK: bench_soak.soak_row,
}


def selected_rows(only: list[str] | None, quick: bool, soak: bool = False) -> list[str]:
    if not only:
        return [SOAK] if soak else [r for r in ROWS if not (quick and r == "gen-10k")]
    return [*_named_rows(only), *([SOAK] if soak else [])]


def _named_rows(only: list[str]) -> list[str]:
    chosen = []
    for item in (part.strip() for text in only for part in text.split(",")):
        name = ROWS[int(item) - 1] if item.isdigit() and 1 <= int(item) <= len(ROWS) else item
        if name not in ROWS:
            raise SystemExit(f"run.py: unknown row {item!r}; rows: {', '.join(ROWS)} (or 1-{len(ROWS)})")
        chosen.append(name)
    return chosen


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="rows: " + ", ".join(f"{i} {r}" for i, r in enumerate(ROWS, 1)),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="skip the 10,000-job row, RSS from 500 vs 2,000 jobs, one download run",
    )
    parser.add_argument(
        "--only", action="append", metavar="ROW", help="only these rows (repeat or comma-separate)"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="kill any one subprocess after S seconds"
    )
    parser.add_argument(
        "--tmp-dir", type=Path, help="where the work directory is made (default: the system's)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (inputs, stdout files)")
    parser.add_argument(
        "--soak",
        action="store_true",
        help="run the soak (alone, or beside the --only rows); never by default",
    )
    parser.add_argument(
        "--soak-minutes", type=float, default=60.0, help="how long the soak runs (default 60)"
    )
    parser.add_argument(
        "--soak-reconnect-minutes",
        type=float,
        default=10.0,
        help="the soak's stream is cut this often (default 10)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = selected_rows(args.only, args.quick, args.soak)
    work = Path(tempfile.mkdtemp(prefix="batchgen-bench-run-", dir=args.tmp_dir))
    started = time.monotonic()
    print(f"environment: {environment(work)}", flush=True)
    results: list[Row] = []
    compile_everything()
    try:
        bench = Bench(work, args.timeout, args.quick)
        bench.soak_minutes, bench.soak_reconnect_minutes = args.soak_minutes, args.soak_reconnect_minutes
        for key in rows:
            print(f"measuring {key} ...", file=sys.stderr, flush=True)
            results.append(BUILDERS[key](bench))
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print_table(results)
    print()
    for row in results:
        print(f"[{row.key}] {row.figure}")
        for note in row.notes:
            print(f"  {note}")
    print()
    print(
        f"Reproduce one row: python benchmarks/run.py --only ROW{' --quick' if args.quick else ''}. "
        "By hand ($WORK: the inputs, kept with --keep):"
    )
    for row in results:
        print(f"[{row.key}]")
        for line in bench.commands.get(row.key, []):
            print(f"  {line}")
    print(f"\ntotal: {time.monotonic() - started:.0f} s")
    return 0 if all(r.met is not None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
