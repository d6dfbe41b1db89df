"""Presigned result downloads: no API key, Range support, and the download fault knobs."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Literal

from aiohttp import web

from batchgen.emulator.context import carries_key
from batchgen.emulator.media import CHUNK, ResultBlob
from batchgen.emulator.responses import forbidden, not_found, state_of
from batchgen.emulator.state import EmulatorState

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
Unsatisfiable = Literal["unsatisfiable"]


def parse_range(header: str | None, size: int) -> tuple[int, int] | Unsatisfiable | None:
    """``[start, stop)`` of a single ``bytes=`` range; None means serve the whole file."""
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None  # absent, malformed or multi-range: a full 200 is a valid answer
    first, last = match.group(1), match.group(2)
    if not first:
        suffix = int(last)
        return (max(0, size - suffix), size) if suffix else "unsatisfiable"
    start = int(first)
    if last and int(last) < start:
        return None
    return (start, min(size, int(last) + 1) if last else size) if start < size else "unsatisfiable"


async def download(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    path = request.rel_url.raw_path
    problem = state.signer.problem(path, request.query)
    gen = state.queue.get(state.results.get(path, ""))
    if gen is not None and request.method != "HEAD":
        state.timeline.mark(gen.generation_id, "first_download")
    if problem or gen is None or gen.result is None:
        return forbidden(problem or "The specified key does not exist")
    if state.config.private_results and not carries_key(request, state.config.api_key):
        return not_found()  # a private repository's file, asked for without the key
    blob = gen.result
    span = parse_range(request.headers.get("Range"), blob.size)
    if span == "unsatisfiable":
        return web.Response(status=416, headers={"Content-Range": f"bytes */{blob.size}"})
    start, stop = span or (0, blob.size)
    response = web.StreamResponse(status=206 if span else 200, headers={"Accept-Ranges": "bytes"})
    response.content_type = blob.content_type
    if span:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{blob.size}"
    if request.method != "HEAD" and stop - start > 1 and state.faults.should_shorten_download():
        stop -= max(1, (stop - start) // 4)  # Content-Length and body agree; the file is longer
    response.content_length = stop - start
    await response.prepare(request)
    if request.method != "HEAD":
        state.counters.downloads += 1
        with contextlib.suppress(ConnectionResetError):  # the client hung up
            await _send(request, response, state, blob, start, stop)
    return response


async def _send(
    request: web.Request,
    response: web.StreamResponse,
    state: EmulatorState,
    blob: ResultBlob,
    start: int,
    stop: int,
) -> None:
    """Write ``[start, stop)``, throttled and truncated as the fault knobs say."""
    truncated = state.faults.should_truncate_download()
    end = start + (stop - start) // 2 if truncated else stop
    rate = state.faults.config.download_bytes_per_second
    chunk = CHUNK if rate is None else max(1, min(CHUNK, int(rate / 10)))
    for piece in blob.iter_range(start, end, chunk):
        await response.write(piece)
        state.counters.bytes_served += len(piece)
        if rate is not None:
            await asyncio.sleep(len(piece) / rate)
    if truncated and request.transport is not None:
        request.transport.close()  # Content-Length promised more: the client sees a short body
