"""The ceiling: the least a client can do to run N generations through the Oxen queue API.

Run: python benchmarks/ceiling.py BODIES.jsonl -o DIR --api-base URL --api-key KEY
                                  [-j 64] [--downloads 16] [--fsync] [--timeout 600]

BODIES.jsonl holds one enqueue body (a JSON object) per line: the requests batchgen sends for the
same manifest (`benchmarks/run.py` writes them from batchgen's plan). The script

1. opens ONE `GET /api/events` stream (before any enqueue: the stream has no replay),
2. enqueues every body with `POST /api/ai/queue`, at most `-j` generations in flight,
3. on each `media_generation_completed` event frees a slot and hands the event's `url` to one of
   `--downloads` download workers, which GET it and write `DIR/<generation_id>.<ext>`
   (with `--fsync`, each file is fsynced before it counts as done).

No journal, no retries, no verification, no reconcile: it assumes the stream carries only this
run's generations (a fresh emulator) and never drops. It is a yardstick, not a client.
At the end it prints one JSON line: jobs done and failed, and its HTTP requests by endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

COMPLETED = "media_generation_completed"


def write_file(path: Path, data: bytes, fsync: bool) -> None:
    with open(path, "wb") as file:
        file.write(data)
        if fsync:
            file.flush()
            os.fsync(file.fileno())


class Ceiling:
    def __init__(self, args: argparse.Namespace, bodies: list[dict[str, Any]]) -> None:
        self.args = args
        self.bodies = bodies
        self.base = args.api_base.rstrip("/")
        self.headers = {"Authorization": f"Bearer {args.api_key}"}
        self.requests: Counter[str] = Counter()
        self.slots = asyncio.Semaphore(args.concurrency)
        self.urls: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.finished = 0  # jobs downloaded or failed
        self.failed = 0
        self.all_finished = asyncio.Event()

    async def run(self) -> None:
        self.args.output_dir.mkdir(parents=True, exist_ok=True)
        no_limit = aiohttp.ClientTimeout(total=None)
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=no_limit) as api,
            aiohttp.ClientSession(timeout=no_limit) as files,
        ):  # results: no API key
            self.requests["GET /api/events"] += 1
            async with api.get(f"{self.base}/api/events", headers=self.headers) as stream:
                stream.raise_for_status()
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(self.read_events(stream))]
                    tasks += [
                        group.create_task(self.download_worker(files)) for _ in range(self.args.downloads)
                    ]
                    for body in self.bodies:
                        await self.slots.acquire()
                        group.create_task(self.enqueue(api, body))
                    if self.bodies:
                        await self.all_finished.wait()
                    for task in tasks:
                        task.cancel()

    async def enqueue(self, api: aiohttp.ClientSession, body: dict[str, Any]) -> None:
        self.requests["POST /api/ai/queue"] += 1
        async with api.post(f"{self.base}/api/ai/queue", json=body, headers=self.headers) as resp:
            resp.raise_for_status()
            await resp.read()

    async def read_events(self, stream: aiohttp.ClientResponse) -> None:
        event = ""
        async for raw in stream.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == COMPLETED:
                data = json.loads(line[5:])
                self.slots.release()
                if data.get("status") == "succeeded" and data.get("url"):
                    self.urls.put_nowait((str(data["generation_id"]), str(data["url"])))
                else:
                    self.failed += 1
                    self.job_finished()
            elif not line:
                event = ""
        raise ConnectionError("the event stream ended")

    async def download_worker(self, files: aiohttp.ClientSession) -> None:
        while True:
            generation_id, url = await self.urls.get()
            self.requests["GET <result>"] += 1
            async with files.get(url) as resp:
                resp.raise_for_status()
                data = await resp.read()
            extension = "png" if data.startswith(b"\x89PNG") else "mp4"
            path = self.args.output_dir / f"{generation_id}.{extension}"
            await asyncio.to_thread(write_file, path, data, self.args.fsync)
            self.job_finished()

    def job_finished(self) -> None:
        self.finished += 1
        if self.finished == len(self.bodies):
            self.all_finished.set()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bodies", type=Path, help="JSON lines: one enqueue body per job")
    parser.add_argument("-o", "--output-dir", type=Path, required=True)
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--api-key", default=os.environ.get("OXEN_API_KEY", ""))
    parser.add_argument("-j", "--concurrency", type=int, default=64, help="generations in flight at once")
    parser.add_argument("--downloads", type=int, default=16, help="download workers")
    parser.add_argument("--fsync", action="store_true", help="fsync each file before it counts as done")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bodies = [json.loads(line) for line in args.bodies.read_text().splitlines() if line.strip()]
    ceiling = Ceiling(args, bodies)

    async def bounded() -> None:
        async with asyncio.timeout(args.timeout):
            await ceiling.run()

    asyncio.run(bounded())
    print(
        json.dumps(
            {
                "jobs": len(bodies),
                "done": ceiling.finished - ceiling.failed,
                "failed": ceiling.failed,
                "requests": dict(ceiling.requests),
            }
        )
    )
    return 0 if ceiling.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
