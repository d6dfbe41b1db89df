"""Benchmark `fetch_result` against `curl -s -o` on loopback: throughput, and memory vs file size.

Run: `python benchmarks/bench_download.py [--size-mib 256] [--reps 5] [--chunk-kib 1024]`

The server runs in its own process (so it does not share the client's event loop or GIL) and
streams a generated MP4-like payload from memory. Both clients download it into the same temporary
directory, alternating, `--reps` times each; the median is reported. `fetch_result` also hashes
(sha256) and fsyncs, which curl does not, so on unpaced loopback it is CPU-bound; a second run
paces the server to a realistic link speed, where the link is the bottleneck for both.
Peak RSS growth is measured in fresh processes, one per file size.
Prints figures only; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing as mp
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
from aiohttp import web

from batchgen.client.download import fetch_result

MIB = 1024 * 1024
BLOCK = MIB


def payload_block() -> bytes:
    """1 MiB starting with an `ftyp` box and an `mdat` box running to the end of the file (size 0), so
    the payload, which repeats this block, passes fetch_result's MP4 box check; content does not
    matter to speed."""
    head = (24).to_bytes(4, "big") + b"ftypisom" + (512).to_bytes(4, "big") + b"isomiso2"
    head += (0).to_bytes(4, "big") + b"mdat"
    return head + bytes(range(256)) * ((BLOCK - len(head)) // 256) + bytes((BLOCK - len(head)) % 256)


def serve(conn: Connection) -> None:
    """Child process: serve /<mib> as that many MiB until the parent says stop."""
    block = payload_block()

    async def handler(request: web.Request) -> web.StreamResponse:
        mib = int(request.match_info["mib"])
        rate = float(request.query.get("rate_mib_s", 0))  # 0: as fast as loopback goes
        resp = web.StreamResponse()
        resp.content_length = mib * BLOCK
        resp.content_type = "video/mp4"
        await resp.prepare(request)
        start = time.perf_counter()
        for sent in range(mib):
            if rate:
                await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
            await resp.write(block)
        return resp

    async def run_server() -> None:
        app = web.Application()
        app.router.add_get("/{mib:\\d+}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        conn.send(runner.addresses[0][1])
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await runner.cleanup()

    asyncio.run(run_server())


async def python_download(url: str, dest: Path, chunk_size: int) -> float:
    """Seconds for one fetch_result() of `url` (session set-up excluded)."""
    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        await fetch_result(session, url, dest, chunk_size=chunk_size)
        return time.perf_counter() - start


def curl_download(url: str, dest: Path) -> float:
    """Seconds for one `curl -s -o` of `url` (process start included)."""
    start = time.perf_counter()
    subprocess.run(["curl", "-s", "-f", "-o", str(dest), url], check=True)
    return time.perf_counter() - start


def reset_peak_rss_kib() -> int:
    """Reset the peak-RSS counter where Linux allows it; return the current RSS (or peak) in KiB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _proc_status_kib("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_rss_kib() -> int:
    """Peak RSS since the last reset, in KiB."""
    try:
        return _proc_status_kib("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def rss_child(url: str, dest: str, chunk_size: int, conn: Connection) -> None:
    """Fresh process: peak RSS growth of one download, then tracemalloc's peak for a second one."""

    async def run() -> tuple[int, int]:
        async with aiohttp.ClientSession() as session:
            before = reset_peak_rss_kib()
            await fetch_result(session, url, Path(dest), chunk_size=chunk_size)
            growth_kib = peak_rss_kib() - before
            tracemalloc.start()
            await fetch_result(session, url, Path(dest + ".traced"), chunk_size=chunk_size)
            traced_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            return growth_kib, traced_peak

    conn.send(asyncio.run(run()))


def measure_memory(base: str, mib: int, tmp: Path, chunk_size: int) -> tuple[int, int]:
    """(peak RSS growth in KiB, tracemalloc peak in bytes) for a `mib` MiB download."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    dest = tmp / f"rss-{mib}.mp4"
    proc = ctx.Process(target=rss_child, args=(f"{base}/{mib}", str(dest), chunk_size, child))
    proc.start()
    result: tuple[int, int] = parent.recv()
    proc.join()
    for path in (dest, Path(f"{dest}.traced")):
        path.unlink(missing_ok=True)
    return result


def compare_throughput(url: str, size: int, tmp: Path, reps: int, chunk_size: int) -> None:
    """Alternate fetch_result and curl `reps` times each (after a warm-up); print medians and ratio."""
    asyncio.run(python_download(url, tmp / "warm-up.mp4", chunk_size))
    (tmp / "warm-up.mp4").unlink()
    py_times: list[float] = []
    curl_times: list[float] = []
    for rep in range(reps):
        dest = tmp / f"fetch-{rep}.mp4"
        py_times.append(asyncio.run(python_download(url, dest, chunk_size)))
        dest.unlink()
        dest = tmp / f"curl-{rep}.mp4"
        curl_times.append(curl_download(url, dest))
        assert dest.stat().st_size == size
        dest.unlink()
    py_rate = size / MIB / statistics.median(py_times)
    curl_rate = size / MIB / statistics.median(curl_times)
    print(f"  fetch_result : {py_rate:8.1f} MiB/s  (runs: {', '.join(f'{t:.3f}s' for t in py_times)})")
    print(f"  curl -s -o   : {curl_rate:8.1f} MiB/s  (runs: {', '.join(f'{t:.3f}s' for t in curl_times)})")
    print(f"  ratio        : {py_rate / curl_rate:.2f}x curl (target >= 0.9x)")


def print_hash_floor(size: int) -> None:
    """The time sha256 alone takes for `size` bytes on one core: a floor fetch_result cannot beat."""
    block, hasher = payload_block(), hashlib.sha256()
    start = time.perf_counter()
    for _ in range(size // BLOCK):
        hasher.update(block)
    elapsed = time.perf_counter() - start
    print(f"  sha256 alone : {size / MIB / elapsed:8.1f} MiB/s  ({elapsed:.3f}s on one core, no I/O)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--small-mib", type=int, default=16)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--chunk-kib", type=int, default=1024)
    parser.add_argument("--link-mib-s", type=float, default=100.0, help="paced run's link speed (0: skip)")
    parser.add_argument("--link-size-mib", type=int, default=64)
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where the files are written")
    return parser.parse_args()


def run_all(base: str, args: argparse.Namespace, tmp: Path) -> None:
    chunk_size = args.chunk_kib * 1024
    print(f"loopback download of {args.size_mib} MiB, chunk_size={args.chunk_kib} KiB, {args.reps} reps")
    compare_throughput(f"{base}/{args.size_mib}", args.size_mib * MIB, tmp, args.reps, chunk_size)
    print_hash_floor(args.size_mib * MIB)
    if args.link_mib_s:
        print(f"paced download of {args.link_size_mib} MiB at {args.link_mib_s:g} MiB/s (a real link)")
        url = f"{base}/{args.link_size_mib}?rate_mib_s={args.link_mib_s}"
        compare_throughput(url, args.link_size_mib * MIB, tmp, args.reps, chunk_size)
    print("memory of fetch_result (fresh process per size):")
    for mib in (args.small_mib, args.size_mib):
        growth_kib, traced = measure_memory(base, mib, tmp, chunk_size)
        print(
            f"  {mib:4d} MiB file: peak RSS growth {growth_kib / 1024:6.1f} MiB, "
            f"tracemalloc peak {traced / MIB:6.2f} MiB"
        )


def main() -> None:
    args = parse_args()
    if shutil.which("curl") is None:
        sys.exit("curl is not installed")
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(child,), daemon=True)
    server.start()
    try:
        base = f"http://127.0.0.1:{parent.recv()}"
        with tempfile.TemporaryDirectory(prefix="bench-download-", dir=args.tmp_dir) as tmp:
            run_all(base, args, Path(tmp))
    finally:
        parent.send("stop")
        server.join(timeout=10)


if __name__ == "__main__":
    main()
