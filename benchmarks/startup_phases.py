"""Where a run's start goes: `batchgen run` with a mark at each phase, from the interpreter's start to
its first POST (a fresh run, or the resume of one stopped half-way) or to its exit (a rerun of a
finished run, which sends nothing). The figures behind the causes named in docs/benchmarks.md.

Each measured run is a child process (`python benchmarks/startup_phases.py --child ...`) that wraps
batchgen's phase functions and prints when each starts and ends, in seconds since the child's
interpreter started (imports come first: the time before `load_manifest` starts). The emulator runs in
its own process at time scale 0.

Run: python benchmarks/startup_phases.py [--jobs 10000] [--mode fresh|resume|rerun] [--repeat 3]
(resume: the same manifest's first half was run to the end, the second half is new)
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: (module, function) pairs whose start and end are marked. startup.prepare first: the runner binds it
#: when batchgen.run.batch imports it, and must bind the marked one.
PHASES = (
    ("batchgen.run.startup", "prepare"),
    ("batchgen.run.batch", "load_manifest"),
    ("batchgen.run.batch", "build_plan"),
    ("batchgen.run.batch", "_execute"),
    ("batchgen.run.batch", "write_run_files"),
    ("batchgen.run.batch", "write_outputs_unless_current"),
    ("batchgen.run.batch", "job_results"),
    ("batchgen.run.batch", "_final_spend"),
)


def child(argv: list[str], stop_at_first_post: bool) -> None:
    """In the measured process: mark each phase, print the marks as one JSON line, exit."""
    marks: list[tuple[float, str]] = []
    started = time.perf_counter() - (time.time() - float(os.environ["STARTUP_PHASES_SPAWNED"]))

    def mark(what: str) -> None:
        marks.append((time.perf_counter() - started, what))

    def wrapped(function: Any, name: str) -> Any:
        if inspect.iscoroutinefunction(function):

            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                mark(f"{name} start")
                try:
                    return await function(*args, **kwargs)
                finally:
                    mark(f"{name} end")

            return timed_async

        def timed(*args: Any, **kwargs: Any) -> Any:
            mark(f"{name} start")
            try:
                return function(*args, **kwargs)
            finally:
                mark(f"{name} end")

        return timed

    for module_name, name in PHASES:
        module = importlib.import_module(module_name)
        setattr(module, name, wrapped(getattr(module, name), name))
    if stop_at_first_post:
        from batchgen.client import api

        async def first_post(self: Any, body: Any) -> list[str]:
            mark("first POST")
            print(json.dumps(marks), flush=True)
            os._exit(0)

        api.OxenClient.enqueue = first_post  # type: ignore[method-assign]
    from batchgen.cli import main

    sys.argv = ["batchgen", "run", *argv]
    try:
        main()
    finally:
        mark("exit")
        print(json.dumps(marks), flush=True)


def measure(argv: list[str], *, first_post: bool) -> list[tuple[float, str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("OXEN_API_KEY", "OXEN_API_BASE")}
    env["STARTUP_PHASES_SPAWNED"] = repr(time.time())
    mode = ["--child-first-post"] if first_post else ["--child"]
    done = subprocess.run(
        [sys.executable, __file__, *mode, "--", *argv], env=env, capture_output=True, text=True, timeout=600
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("[")]
    marks = [(float(t), str(w)) for t, w in json.loads(lines[0])] if lines else []
    if not any(what == "prepare end" for _, what in marks):
        raise SystemExit(f"the measured run did not get going:\n{done.stderr[-2000:]}")
    return marks


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("--child", "--child-first-post"):
        child(sys.argv[3:], stop_at_first_post=sys.argv[1] == "--child-first-post")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs in the manifest (default 10,000)")
    parser.add_argument("--mode", choices=("fresh", "resume", "rerun"), default="fresh")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs (default 3)")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).parent))
    import _harness as h

    from batchgen.emulator import EmulatorConfig

    work = Path(tempfile.mkdtemp(prefix="batchgen-startup-phases-"))
    try:
        manifest = h.write_manifest(work, name=f"jobs{args.jobs}", count=args.jobs)
        zero = EmulatorConfig(time_scale=0.0, account_concurrency=1_000_000)
        with h.EmulatorProcess(zero) as emu:
            out = work / "out"
            argv = [str(manifest), "-o", str(out), "--api-base", emu.base_url, "--api-key", emu.api_key]
            argv += ["--no-progress", "-j", "64", "--downloads", "16"]
            if args.mode != "fresh":  # resume: the first half of the same jobs done (same name, same keys)
                (work / "half").mkdir()
                half = h.write_manifest(work / "half", name=manifest.stem, count=args.jobs // 2)
                first = [str(half if args.mode == "resume" else manifest), *argv[1:]]
                subprocess.run(
                    [sys.executable, "-m", "batchgen", "run", *first], capture_output=True, timeout=600
                )
            for _ in range(args.repeat):
                run_dir = work / "measured"
                shutil.rmtree(run_dir, ignore_errors=True)
                if out.exists():
                    shutil.copytree(out, run_dir, symlinks=True)
                marks = measure(
                    [a if a != str(out) else str(run_dir) for a in argv], first_post=args.mode != "rerun"
                )
                print("  ".join(f"{what} {t:.3f}" for t, what in marks))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
