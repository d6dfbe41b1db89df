"""The documented poller: enqueue, then ask `GET /api/ai/queue/{id}` every 5 s until the job is done.

Run: python benchmarks/poller.py BODIES.jsonl -o DIR --api-base URL --api-key KEY
                                 [-j 64] [--interval 5] [--timeout 600]

BODIES.jsonl holds one enqueue body (a JSON object) per line, as for `ceiling.py`. Each job is the
docs' loop, written out: `POST /api/ai/queue`, then `sleep(interval); GET /api/ai/queue/{id}` until
the status is terminal (succeeded, failed, cancelled), then one GET of `result_url`, written to
`DIR/<n>.<ext>`. At most `-j` jobs run at once; one keep-alive session for the API and one (without
the key) for the results. `--interval` is in real seconds: against an emulator that compresses time
by a factor, pass 5 times that factor. At the end it prints one JSON line: jobs done and failed,
its HTTP requests by endpoint, and the achieved seconds between two polls of one job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


class Poller:
    def __init__(self, args: argparse.Namespace, bodies: list[dict[str, Any]]) -> None:
        self.args = args
        self.bodies = bodies
        self.base = args.api_base.rstrip("/")
        self.headers = {"Authorization": f"Bearer {args.api_key}"}
        self.requests: Counter[str] = Counter()
        self.status: Counter[str] = Counter()
        self.poll_spans: list[tuple[float, int]] = []  # per job: seconds from first to last poll, polls - 1

    async def run(self) -> None:
        self.args.output_dir.mkdir(parents=True, exist_ok=True)
        slots = asyncio.Semaphore(self.args.concurrency)
        no_limit = aiohttp.ClientTimeout(total=None)
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=no_limit) as api,
            aiohttp.ClientSession(timeout=no_limit) as files,
            asyncio.TaskGroup() as group,
        ):
            for index, body in enumerate(self.bodies):
                await slots.acquire()
                task = group.create_task(self.job(api, files, index, body))
                task.add_done_callback(lambda _task: slots.release())

    async def job(
        self, api: aiohttp.ClientSession, files: aiohttp.ClientSession, index: int, body: dict[str, Any]
    ) -> None:
        self.requests["POST /api/ai/queue"] += 1
        async with api.post(f"{self.base}/api/ai/queue", json=body, headers=self.headers) as resp:
            resp.raise_for_status()
            generation_id = (await resp.json())["generations"][0]["generation_id"]
        row: dict[str, Any] = {"status": "queued"}
        polls: list[float] = []
        while row["status"] not in TERMINAL:
            await asyncio.sleep(self.args.interval)
            self.requests["GET /api/ai/queue/{id}"] += 1
            async with api.get(f"{self.base}/api/ai/queue/{generation_id}", headers=self.headers) as resp:
                resp.raise_for_status()
                row = await resp.json()
            polls.append(time.monotonic())
        self.poll_spans.append((polls[-1] - polls[0], len(polls) - 1))
        self.status[row["status"]] += 1
        if row["status"] != "succeeded" or not row.get("result_url"):
            return
        self.requests["GET <result>"] += 1
        async with files.get(row["result_url"]) as resp:
            resp.raise_for_status()
            data = await resp.read()
        extension = "png" if data.startswith(b"\x89PNG") else "mp4"
        await asyncio.to_thread((self.args.output_dir / f"{index}.{extension}").write_bytes, data)

    def summary(self) -> dict[str, Any]:
        gaps = sum(n for _, n in self.poll_spans)
        period = sum(s for s, _ in self.poll_spans) / gaps if gaps else None
        return {
            "jobs": len(self.bodies),
            "done": self.status["succeeded"],
            "failed": len(self.bodies) - self.status["succeeded"],
            "requests": dict(self.requests),
            "poll_period_s": period,
        }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bodies", type=Path, help="JSON lines: one enqueue body per job")
    parser.add_argument("-o", "--output-dir", type=Path, required=True)
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--api-key", default=os.environ.get("OXEN_API_KEY", ""))
    parser.add_argument("-j", "--concurrency", type=int, default=64, help="jobs in flight at once")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between two polls of a job")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bodies = [json.loads(line) for line in args.bodies.read_text().splitlines() if line.strip()]
    poller = Poller(args, bodies)

    async def bounded() -> None:
        async with asyncio.timeout(args.timeout):
            await poller.run()

    asyncio.run(bounded())
    summary = poller.summary()
    print(json.dumps(summary))
    return 0 if summary["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
