"""Shared pieces of the run benchmarks (bench_requests, bench_latency, bench_concurrency, bench_overhead).

- A manifest writer (the same shape as tests/e2e) and the CLI's wiring of manifest -> plan -> journal ->
  OxenClient -> Runner, run in-process (`run_batchgen`).
- `PollingClient`: the reference per-job polling client (the fal / Replicate pattern).
- `EmulatorProcess`: the emulator in a child process, for measurements where the emulator must not
  share the runner's CPU and event loop.
- Small statistics and formatting helpers.

Not a benchmark itself; the scripts import it (`python benchmarks/NAME.py` puts this folder on sys.path).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing as mp
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from batchgen.client.api import OxenClient
from batchgen.client.models import model_catalog
from batchgen.config import Limits, RunOptions, Timeouts
from batchgen.journal.store import Journal
from batchgen.manifest import load_manifest
from batchgen.planning import Plan, build_plan
from batchgen.run.runner import Runner, RunOutcome

VIDEO_MODEL = "kling-video-o3-pro-reference-to-video"
TERMINAL = ("succeeded", "failed", "cancelled")
DOWNLOAD_ROUTE = "GET /api/repos/{namespace}/{repo}/files/{path}"


# -- manifests and plans ---------------------------------------------------------------------------


def write_manifest(folder: Path, *, name: str, count: int, model: str = VIDEO_MODEL) -> Path:
    """`count` distinct 5 s video jobs (one matrix axis), as in tests/e2e/test_run.py."""
    manifest = {
        "version": 1,
        "name": name,
        "model": model,
        "defaults": {"aspect_ratio": "16:9", "duration": 5},
        "jobs": [
            {
                "name": "clip",
                "prompt": "Clip number {n}, slow dolly shot",
                "matrix": {"n": list(range(count))},
            }
        ],
        "output": {"pattern": "{name}/{name}-{n}.mp4"},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


async def load_plan(manifest_path: Path, client: OxenClient | None) -> Plan:
    """What `batchgen run` does: load, then plan against the shipped snapshots (+ registry if needed)."""
    manifest = load_manifest(manifest_path)
    return build_plan(manifest, (await model_catalog(client, manifest)).catalog)


def run_options(
    base_url: str, *, concurrency: int, downloads: int = 4, time_scale: float = 1.0, **overrides: Any
) -> RunOptions:
    """RunOptions as the CLI would build them, with the *time-based* defaults scaled by `time_scale`.

    The emulator compresses simulated time by `time_scale`; scaling the runner's own timers the same
    way (safety reconcile every 60 s, stream idle watchdog 45 s) keeps the run a faithful miniature
    of the real-time one. Request/connect timeouts are not scaled (they bound real I/O).
    """
    defaults = RunOptions()
    scaled_idle = max(0.5, defaults.timeouts.stream_idle_s * time_scale)
    return RunOptions(
        api_base=base_url,
        limits=Limits(concurrency=concurrency, downloads=downloads),
        timeouts=Timeouts(request_s=30.0, stream_idle_s=scaled_idle),
        expected_render_s=overrides.pop("expected_render_s", 300.0 * time_scale or None),
        poll_interval_s=overrides.pop("poll_interval_s", defaults.poll_interval_s * time_scale),
        **overrides,
    )


@dataclass
class BatchgenRun:
    outcome: RunOutcome
    jobs: int
    started: float  # time.monotonic() when runner.run() was called
    finished: float  # ... and when it returned
    runner: Runner
    cpu_s: float  # CPU time of this process (all threads) during runner.run()
    main_thread_cpu_s: float  # ... of the event-loop thread alone

    @property
    def wall_s(self) -> float:
        return self.finished - self.started


async def run_batchgen(
    base_url: str,
    api_key: str,
    manifest_path: Path,
    run_dir: Path,
    options: RunOptions,
    *,
    on_runner: Callable[[Runner], None] | None = None,
) -> BatchgenRun:
    """The CLI's `_run`/`_execute` wiring, minus argparse, the run lock, plan.json and results files."""
    async with OxenClient(base_url, api_key, timeouts=options.timeouts, retry=options.retry) as client:
        plan = await load_plan(manifest_path, client)
        await asyncio.to_thread(run_dir.mkdir, parents=True, exist_ok=True)
        journal = Journal.open(run_dir)
        try:
            runner = Runner(plan, run_dir, journal, client, options)
            if on_runner is not None:
                on_runner(runner)
            cpu, thread_cpu, started = time.process_time(), time.thread_time(), time.monotonic()
            outcome = await runner.run()
            finished = time.monotonic()
            cpu, thread_cpu = time.process_time() - cpu, time.thread_time() - thread_cpu
        finally:
            journal.close()
    return BatchgenRun(outcome, len(plan.jobs), started, finished, runner, cpu, thread_cpu)


def plan_bodies(plan: Plan) -> list[dict[str, Any]]:
    """The exact enqueue bodies batchgen sends for a plan (its jobs have no local assets)."""
    return [dict(job.request) for job in plan.jobs]


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"batchgen-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- the reference polling client -------------------------------------------------------------------


@dataclass
class PolledJob:
    generation_id: str
    polls: int = 0
    first_poll: float | None = None  # monotonic
    last_poll: float | None = None
    status: str = "queued"


@dataclass
class PollingStats:
    jobs: list[PolledJob] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    finished: float = 0.0

    @property
    def wall_s(self) -> float:
        return self.finished - self.started

    def mean_poll_period_s(self) -> float | None:
        """Achieved seconds between two status polls of one job (interval + round trip + loop lag)."""
        spans = [
            (j.last_poll - j.first_poll, j.polls - 1)
            for j in self.jobs
            if j.first_poll is not None and j.last_poll is not None and j.polls > 1
        ]
        total = sum(n for _, n in spans)
        return sum(s for s, _ in spans) / total if total else None


class PollingClient:
    """What fal-client / replicate-python / openai-python do for each job, written out:

    enqueue (POST /api/ai/queue), then `sleep(interval); GET /api/ai/queue/{id}` until the status is
    terminal, then download `result_url` once. At most `concurrency` jobs are in flight, like
    batchgen's `-j`. One keep-alive session for the API and one (without the key) for results.
    `interval_s` is in real seconds: pass the simulated interval times the emulator's time_scale.
    """

    def __init__(
        self, base_url: str, api_key: str, *, interval_s: float, concurrency: int, out_dir: Path
    ) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.interval_s = interval_s
        self.concurrency = concurrency
        self.out_dir = out_dir

    async def run(self, bodies: Sequence[dict[str, Any]]) -> PollingStats:
        stats = PollingStats()
        slots = asyncio.Semaphore(self.concurrency)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as api, aiohttp.ClientSession() as files:
            stats.started = time.monotonic()
            async with asyncio.TaskGroup() as group:
                for index, body in enumerate(bodies):
                    await slots.acquire()
                    task = group.create_task(self._job(api, files, index, body, stats))
                    task.add_done_callback(lambda _t: slots.release())
            stats.finished = time.monotonic()
        return stats

    async def _job(
        self,
        api: aiohttp.ClientSession,
        files: aiohttp.ClientSession,
        index: int,
        body: dict[str, Any],
        stats: PollingStats,
    ) -> None:
        stats.requests["POST /api/ai/queue"] += 1
        async with api.post(f"{self.base_url}/api/ai/queue", json=body, headers=self.headers) as resp:
            resp.raise_for_status()
            answer = await resp.json()
        job = PolledJob(str(answer["generations"][0]["generation_id"]))
        stats.jobs.append(job)
        row: dict[str, Any] = {}
        while job.status not in TERMINAL:
            await asyncio.sleep(self.interval_s)
            stats.requests["GET /api/ai/queue/{id}"] += 1
            async with api.get(
                f"{self.base_url}/api/ai/queue/{job.generation_id}", headers=self.headers
            ) as resp:
                resp.raise_for_status()
                row = await resp.json()
            now = time.monotonic()
            job.first_poll = job.first_poll or now
            job.last_poll = now
            job.polls += 1
            job.status = str(row["status"])
        if job.status == "succeeded" and row.get("result_url"):
            stats.requests["GET <result>"] += 1
            async with files.get(str(row["result_url"])) as resp:
                resp.raise_for_status()
                content = await resp.read()
            await asyncio.to_thread((self.out_dir / f"{index}.mp4").write_bytes, content)


# -- the emulator in a child process ---------------------------------------------------------------


QUEUE_POST = "POST /api/ai/queue"


class _Served:
    """The child process's side of `EmulatorProcess`: answers each command sent over the pipe.

    Every POST /api/ai/queue is kept as the gateway logged it (arrival time, then status and
    Retry-After once answered), so the parent can time a client's first POST and its refills."""

    def __init__(self, emu: Any) -> None:
        self.emu = emu
        self.posts: list[Any] = []  # LoggedRequest of every POST /api/ai/queue, in arrival order
        self.mark = 0  # first_post() looks at the POSTs from this index on
        emu.counters.listeners.append(self._heard)

    def _heard(self, event: str, detail: Any) -> None:
        if event == "request" and detail.route == QUEUE_POST:
            self.posts.append(detail)

    def answer(self, command: Any) -> Any:
        name, args = (command[0], command[1:]) if isinstance(command, tuple) else (command, ())
        emu = self.emu
        if name == "snapshot":
            return emu.counters.snapshot()
        if name == "cpu":
            return time.process_time()
        if name == "records":
            return [
                (g.generation_id, g.status, g.enqueued_at, g.started_at, g.completed_at,
                 emu.marks(g.generation_id))
                for g in emu.generations()
            ]  # fmt: skip
        if name == "counts":
            counters = emu.counters
            return {
                "requests": dict(counters.requests),
                "sse_connections": counters.sse_connections,
                "events_sent": counters.events_sent,
                "generations_enqueued": counters.generations_enqueued,
                "faults": dict(counters.faults),
            }
        if name == "mark_posts":
            self.mark = len(self.posts)
            return self.mark
        if name == "first_post":
            fresh = self.posts[self.mark :]
            return (fresh[0].at if fresh else None), emu.counters.generations_enqueued
        if name == "posts":
            return [(r.at, r.status, r.retry_after) for r in self.posts]
        if name == "set_faults":
            emu.set_faults(**args[0])
            return time.monotonic()  # the faults' epoch: a storm starts now
        raise ValueError(f"unknown command {name!r}")


def _serve(config: Any, conn: Connection) -> None:
    """Child process: run one emulator until told to stop; answer the parent's commands."""
    from batchgen.emulator import run_emulator

    # Rows that kill a client on purpose (first-post) leave answers half-written: not news.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with run_emulator(config) as emu:
            served = _Served(emu)
            conn.send((emu.base_url, emu.api_key))
            while True:
                command = await loop.run_in_executor(None, conn.recv)
                if command == "stop":
                    conn.send(None)
                    return
                try:
                    conn.send(("ok", served.answer(command)))
                except Exception as exc:  # the parent raises it
                    conn.send(("error", repr(exc)))

    asyncio.run(main())


class EmulatorProcess:
    """`with EmulatorProcess(config) as emu:` an emulator in its own process (its own core and GIL).

    Times it reports (`first_post`, `posts`, `set_faults`, the marks in `records`) are
    `time.monotonic()` readings of the child, comparable with this process's own."""

    def __init__(self, config: Any) -> None:
        self._config = config
        self.base_url = ""
        self.api_key = ""

    def __enter__(self) -> EmulatorProcess:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(self._config, child), daemon=True)
        self._proc.start()
        deadline = time.monotonic() + 30
        while not self._conn.poll(0.05):
            if not self._proc.is_alive() or time.monotonic() > deadline:
                self._proc.kill()
                raise RuntimeError("the emulator process did not start (see its traceback above)")
        self.base_url, self.api_key = self._conn.recv()
        return self

    def _ask(self, command: Any) -> Any:
        self._conn.send(command)
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"emulator process: {value}")
        return value

    def snapshot(self) -> dict[str, Any]:
        return dict(self._ask("snapshot"))

    def cpu_s(self) -> float:
        """CPU seconds the emulator process has used so far (all its threads)."""
        return float(self._ask("cpu"))

    def records(self) -> list[Any]:
        """(generation_id, status, enqueued_at, started_at, completed_at, marks) of every generation."""
        return list(self._ask("records"))

    def counts(self) -> dict[str, Any]:
        """The small counters: requests per route, stream connections, events sent, faults injected."""
        return dict(self._ask("counts"))

    def mark_posts(self) -> None:
        """From now on, `first_post` reports the first POST /api/ai/queue arriving after this call."""
        self._ask("mark_posts")

    def first_post(self) -> tuple[float | None, int]:
        """When the first POST /api/ai/queue since `mark_posts` arrived (None: none yet), and the
        generations enqueued so far."""
        at, enqueued = self._ask("first_post")
        return at, int(enqueued)

    def posts(self) -> list[tuple[float, int | None, str | None]]:
        """Every POST /api/ai/queue: (arrival, status or None, Retry-After or None)."""
        return list(self._ask("posts"))

    def set_faults(self, **changes: Any) -> float:
        """Change the fault knobs now; returns the child's `time.monotonic()` right after (a 429
        storm set this way starts then)."""
        return float(self._ask(("set_faults", changes)))

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError, EOFError):
            self._conn.send("stop")
            self._conn.poll(10) and self._conn.recv()
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)


@contextlib.asynccontextmanager
async def emulators(configs: Iterable[Any]) -> AsyncIterator[list[Any]]:
    """Several in-process emulators, started together and stopped together."""
    from batchgen.emulator import run_emulator

    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(run_emulator(config)) for config in configs]


# -- numbers -----------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(values: Sequence[float]) -> str:
    """`p50 / p95 / max` of seconds, printed in milliseconds."""
    if not values:
        return "n/a"
    return (
        f"p50 {percentile(values, 50) * 1e3:8.1f} ms   p95 {percentile(values, 95) * 1e3:8.1f} ms   "
        f"max {max(values) * 1e3:8.1f} ms"
    )


def requests_by_endpoint(requests: dict[str, int]) -> dict[str, int]:
    """The emulator's per-route counts with short names, for printing."""
    short = {
        DOWNLOAD_ROUTE: "GET <result>",
        "HEAD /api/repos/{namespace}/{repo}/files/{path}": "HEAD <result>",
        "GET /api/ai/queue/{generation_id}": "GET /api/ai/queue/{id}",
    }
    return {short.get(route, route): n for route, n in sorted(requests.items())}
