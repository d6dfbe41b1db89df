"""Run a command and write its wall time, CPU time and peak RSS to a JSON file (used by run.py).

Run: python -I -S benchmarks/_measure.py RESULT.json COMMAND [ARG...]

Why a wrapper: Linux counts a process's peak RSS across exec, starting from the memory of the process
that forked it. Measured straight from run.py (which holds plans and run records), every client
would show run.py's own peak. This wrapper imports almost nothing, so the floor it passes on is a
few MiB, far below any measured client. It forks, execs COMMAND, waits with `os.wait4` (the child's
own rusage) and exits with the child's status. Timestamps: `time.time()` and `time.monotonic()`
just before the fork, `time.monotonic()` just after the child was reaped.
"""

import json
import os
import sys
import time


def main() -> int:
    result, command = sys.argv[1], sys.argv[2:]
    started_wall, started = time.time(), time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    finished = time.monotonic()
    code = os.waitstatus_to_exitcode(status)
    with open(result, "w") as file:
        json.dump(
            {
                "returncode": code,
                "started_wall": started_wall,
                "started": started,
                "finished": finished,
                "peak_rss_kib": usage.ru_maxrss,
                "cpu_s": usage.ru_utime + usage.ru_stime,
            },
            file,
        )
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
