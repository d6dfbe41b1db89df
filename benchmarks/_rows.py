"""What every row of benchmarks/run.py shares: running a measured subprocess (through `_measure.py`,
or watched live as a `Spawned` process whose RSS and CPU are sampled from /proc), the emulator's
command line, a row of the table, and small statistics.

Not a benchmark itself; run.py and the row modules (bench_start, bench_makespan, bench_soak) import it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from _harness import EmulatorProcess

from batchgen.emulator import EmulatorConfig, FaultConfig, LatencyConfig

HERE = Path(__file__).resolve().parent
PY = sys.executable
SHOWN_BASE = "http://127.0.0.1:8765"  # the emulator's address in the printed commands
MB = 1_000_000
MIB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# -- running a measured subprocess -----------------------------------------------------------------


def child_env() -> dict[str, str]:
    """This environment without the API settings and proxies (everything here is 127.0.0.1). Clients
    run from bytecode, as an installed package does, even where the shell sets PYTHONDONTWRITEBYTECODE."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OXEN_API_KEY", "OXEN_API_BASE", "PYTHONDONTWRITEBYTECODE") and "proxy" not in k.lower()
    }
    env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def compile_everything() -> None:
    """The client code, the emulator and the reference scripts compiled (into their __pycache__
    directories) before anything is timed, so that no measured run pays for compiling."""
    import batchgen

    roots = (Path(batchgen.__file__).parent, HERE)
    subprocess.run([PY, "-m", "compileall", "-q", *map(str, roots)], env=child_env(), check=False)


@dataclass(frozen=True)
class Proc:
    command: tuple[str, ...]
    returncode: int
    timed_out: bool
    wall_s: float
    peak_rss_kib: int  # the process's own peak (with its waited-for children), from wait4
    cpu_s: float  # its user + system CPU time (all threads), from wait4
    started_wall: float  # time.time() at spawn
    finished_mono: float  # time.monotonic() at exit
    stdout: Path
    stderr: str  # the last 4,000 characters

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def failure(self) -> str:
        why = "timed out" if self.timed_out else f"exit {self.returncode}"
        return f"{why}: {self.stderr.strip()[-600:]}"

    def last_line(self) -> str:
        with open(self.stdout, "rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 4096))
            lines = file.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""


def run_measured(command: Sequence[str], *, timeout_s: float, cwd: Path, stdout: Path) -> Proc:
    """Run `command` through `_measure.py` in its own process group; kill the group after `timeout_s`."""
    result = stdout.with_name(stdout.name + ".measure.json")
    result.unlink(missing_ok=True)
    wrapped = [PY, "-I", "-S", str(HERE / "_measure.py"), str(result), *command]
    timed_out = False
    with open(stdout, "wb") as out, tempfile.TemporaryFile() as err:
        started_wall, started = time.time(), time.monotonic()
        child = subprocess.Popen(
            wrapped,
            cwd=cwd,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            child.wait(timeout=timeout_s)
        except BaseException as exc:  # the timeout, or Ctrl-C: do not leave the group running
            timed_out = isinstance(exc, subprocess.TimeoutExpired)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            if not timed_out:
                raise
        finished = time.monotonic()
        err.seek(0)
        stderr = err.read().decode(errors="replace")[-4000:]
    try:
        m = json.loads(result.read_text())
        result.unlink()
    except (OSError, ValueError):  # killed before it could write
        m = {
            "returncode": child.returncode,
            "started_wall": started_wall,
            "started": started,
            "finished": finished,
            "peak_rss_kib": 0,
            "cpu_s": 0.0,
        }
    return Proc(
        tuple(command),
        int(m["returncode"]),
        timed_out,
        m["finished"] - m["started"],
        int(m["peak_rss_kib"]),
        float(m["cpu_s"]),
        float(m["started_wall"]),
        float(m["finished"]),
        stdout,
        stderr,
    )


def emulator_command(config: EmulatorConfig) -> str:
    """The `python -m batchgen.emulator` command line of a config (flags that differ from defaults)."""
    flags = ["--port", SHOWN_BASE.rsplit(":", 1)[1]]
    pairs = ((config, EmulatorConfig()), (config.latency, LatencyConfig()), (config.faults, FaultConfig()))
    for obj, default in pairs:
        for item in fields(obj):
            value = getattr(obj, item.name)
            if "help" in item.metadata and item.name != "port" and value != getattr(default, item.name):
                flag = f"--{item.name.replace('_', '-')}"
                flags += [flag, *value] if isinstance(value, tuple) else [flag, str(value)]
    return shlex.join(["python", "-m", "batchgen.emulator", *flags])


# -- rows --------------------------------------------------------------------------------------------


@dataclass
class Row:
    key: str
    figure: str
    cells: tuple[str, str, str, str]  # batchgen, poller, ceiling (or reference), ceiling + fsync
    ratio: str
    goal: str
    met: bool | None  # None: could not be measured
    notes: list[str] = field(default_factory=list)


def four(cells: Sequence[str]) -> tuple[str, str, str, str]:
    """The four client cells of a row (batchgen, poller, ceiling, ceiling + fsync)."""
    a, b, c, d = cells
    return a, b, c, d


def median_s(procs: Sequence[Proc]) -> float:
    """The median wall time of some runs."""
    return statistics.median(p.wall_s for p in procs)


def alternate(
    commands: Mapping[str, Sequence[str]], *, reps: int, timeout_s: float, cwd: Path
) -> dict[str, list[Proc]]:
    """Each command `reps` times, taking turns (a, b, a, b, ...), so that a change in the machine's
    load touches both alike. Stops early when a run fails (the failed run is the list's last)."""
    runs: dict[str, list[Proc]] = {name: [] for name in commands}
    for _ in range(reps):
        for name, command in commands.items():
            stdout = cwd / f"{name.replace(' ', '-')}.stdout"
            runs[name].append(run_measured(command, timeout_s=timeout_s, cwd=cwd, stdout=stdout))
            if not runs[name][-1].ok:
                return runs
    return runs


def ratio_row(
    key: str, figure: str, runs: dict[str, list[Proc]], *, goal: float, goal_text: str, notes: list[str]
) -> Row:
    """A row whose first command is batchgen and second its reference: the medians, their ratio, and
    whether the ratio is within `goal`."""
    (name, ours), (ref_name, theirs) = runs.items()
    failed = [p for p in (*ours, *theirs) if not p.ok]
    if failed or not ours or not theirs:
        notes.append(f"failed: {failed[0].failure() if failed else 'no run'}")
        return Row(key, figure, ("failed", "—", "—", "—"), "—", goal_text, None, notes)
    a, b = median_s(ours), median_s(theirs)
    for label, procs in ((name, ours), (ref_name, theirs)):
        times = ", ".join(f"{p.wall_s:.3f}" for p in procs)
        notes.append(f"{label}: median {a if procs is ours else b:.3f} s of {len(procs)} runs ({times} s)")
    return Row(key, figure, (f"{a:.3f} s", "—", f"{ref_name} {b:.3f} s", "—"), f"{a / b:.1f}x", goal_text,
               a / b <= goal, notes)  # fmt: skip


class Spawned:
    """A client started straight from here (no `_measure.py` wrapper), watched while it runs: its pid
    is the client's own, so /proc gives its RSS and CPU time as it goes. It runs in its own session;
    leaving the `with` block kills what is left of it.

    `started` is `time.monotonic()` just before the spawn, comparable with the emulator process's
    marks."""

    def __init__(self, command: Sequence[str], *, cwd: Path, log: Path) -> None:
        self.command = tuple(command)
        self.log = log
        self._out = open(log, "wb")  # noqa: SIM115 (closed in __exit__)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            self.command,
            cwd=cwd,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def __enter__(self) -> Spawned:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._out.close()

    def running(self) -> bool:
        return self.proc.poll() is None

    def rss_kib(self) -> int | None:
        """Its resident memory now (None once it is gone)."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields_ = Path(f"/proc/{self.proc.pid}/statm").read_text().split()
            return int(fields_[1]) * PAGE // 1024
        return None

    def cpu_s(self) -> float | None:
        """Its user + system CPU time so far, all threads (None once it is gone)."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            after_name = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(after_name[11]) + int(after_name[12])) / TICK  # utime, stime
        return None

    def interrupt(self) -> None:
        """Ctrl-C, to the client alone."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGINT)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def wait(self, timeout_s: float) -> int | None:
        """Its exit status, or None (and it is killed) if it ran past `timeout_s`."""
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def tail(self) -> str:
        self._out.flush()
        return self.log.read_bytes()[-600:].decode(errors="replace").strip()


def wait_for(predicate: Callable[[], bool], *, timeout_s: float, every_s: float = 0.01) -> bool:
    """Poll `predicate` until it holds (True) or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(every_s)
    return True


def run_command(manifest: Path, out: Path, emu: EmulatorProcess, *flags: str) -> list[str]:
    """`batchgen run MANIFEST` against a standalone emulator, into `out`, without progress output."""
    return [
        PY,
        "-m",
        "batchgen",
        "run",
        str(manifest),
        "-o",
        str(out),
        "--api-base",
        emu.base_url,
        "--api-key",
        emu.api_key,
        "--no-progress",
        *flags,
    ]
