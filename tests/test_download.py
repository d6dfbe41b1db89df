"""Result downloads against a local storage server: verified, resumed with Range, atomic, safe."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import os
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from batchgen.client.download import RateGuard, fetch_result, redact_url
from batchgen.emulator import EmulatorConfig, FaultConfig, run_emulator
from batchgen.emulator.media import make_result
from batchgen.errors import (
    DownloadCorrupt,
    DownloadError,
    DownloadExpired,
    DownloadStalled,
    StorageError,
    UnverifiedKept,
)
from batchgen.rundir import landing
from batchgen.rundir.layout import part_path
from batchgen.rundir.verify import Downloaded, verify_file

CUT = 50_000  # bytes a cutting handler sends before dropping the connection


def mp4_bytes(size: int, seed: int = 1) -> bytes:
    """A structurally valid MP4 of `size` bytes: an `ftyp` box, then one `mdat` box of deterministic noise."""
    ftyp = (24).to_bytes(4, "big") + b"ftypisom" + (512).to_bytes(4, "big") + b"isomiso2"
    mdat = (size - len(ftyp)).to_bytes(4, "big") + b"mdat"
    return ftyp + mdat + random.Random(seed).randbytes(size - len(ftyp) - len(mdat))


PAYLOAD = mp4_bytes(300_000)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Storage:
    """A fake presigned-URL host: serves PAYLOAD under several misbehaviours and records what it saw."""

    payload: bytes = PAYLOAD
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    bytes_sent: int = 0
    sent: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    client_wrote: int = 0  # bytes the client has taken in (see `observe_writes`)
    wrote: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def note_client_write(self, size: int) -> None:
        """Called by the instrumented download: the client took in `size` more bytes."""
        async with self.wrote:
            self.client_wrote += size
            self.wrote.notify_all()

    def headers_seen(self, route: str) -> list[dict[str, str]]:
        """The request headers of every request to `route`, in order."""
        return [headers for path, headers in self.requests if path == route]

    async def send(
        self,
        request: web.Request,
        status: int,
        start: int,
        *,
        stop: int | None = None,
        pace: float = 0,
        cap: int | None = None,
    ) -> web.StreamResponse:
        """Send payload[start:] (at most `cap` bytes), honestly framed; drop the connection after `stop`."""
        body = self.payload[start:][:cap]
        resp = web.StreamResponse(status=status)
        resp.content_length = len(body)
        if status == 206:
            resp.headers["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{len(self.payload)}"
        await resp.prepare(request)
        pieces = 10 if pace else 1
        sent_body = body[:stop] if stop is not None else body
        step = -(-len(sent_body) // pieces) or 1
        for offset in range(0, len(sent_body), step):
            await asyncio.sleep(pace)
            await resp.write(sent_body[offset : offset + step])
            self.bytes_sent += len(sent_body[offset : offset + step])
        if stop is not None:
            # Drop the connection only once the client has stored what was sent, so the resume
            # offset is deterministic (aiohttp discards bytes still buffered when a cut is detected).
            async with asyncio.timeout(5), self.wrote:
                await self.wrote.wait_for(lambda: self.client_wrote >= start + len(sent_body))
            assert request.transport is not None
            request.transport.close()
        return resp

    async def hang(self, request: web.Request, start: int) -> web.StreamResponse:
        """Send CUT bytes, then go silent until the test ends (a stalled connection)."""
        resp = web.StreamResponse(status=206 if start else 200)
        resp.content_length = len(self.payload) - start
        if start:
            resp.headers["Content-Range"] = f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}"
        await resp.prepare(request)
        await resp.write(self.payload[start : start + CUT])
        self.bytes_sent += CUT
        self.sent.set()
        await self.release.wait()
        return resp

    async def drip(self, request: web.Request, start: int) -> web.StreamResponse:
        """Send payload[start:] one byte every 20 ms: never silent long enough for a read timeout."""
        resp = web.StreamResponse(status=206 if start else 200)
        resp.content_length = len(self.payload) - start
        if start:
            resp.headers["Content-Range"] = f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}"
        await resp.prepare(request)
        for offset in range(start, len(self.payload)):
            await resp.write(self.payload[offset : offset + 1])
            self.bytes_sent += 1
            await asyncio.sleep(0.02)  # the pace of the drip, not a wait for anything
        return resp

    async def ranged(self, request: web.Request, **kwargs: Any) -> web.StreamResponse:
        """Honour a `Range: bytes=N-` header as a real object store does (206, or 416 past the end)."""
        start = range_start(request)
        if start is None:
            return await self.send(request, 200, 0, **kwargs)
        if start >= len(self.payload):
            return web.Response(status=416, headers={"Content-Range": f"bytes */{len(self.payload)}"})
        return await self.send(request, 206, start, **kwargs)


def range_start(request: web.Request) -> int | None:
    """The N of a `Range: bytes=N-` request header, or None."""
    value = request.headers.get("Range")
    if value is None:
        return None
    match = re.fullmatch(r"bytes=(\d+)-", value)
    assert match, value
    return int(match[1])


def build_app(storage: Storage) -> web.Application:
    """Routes named after the behaviour they simulate."""
    calls: dict[str, int] = {}

    def first_call(route: str) -> bool:
        calls[route] = calls.get(route, 0) + 1
        return calls[route] == 1

    async def ok(request: web.Request) -> web.StreamResponse:
        return await storage.ranged(request)

    async def cut_once(request: web.Request) -> web.StreamResponse:
        return await storage.ranged(request, stop=CUT if first_call("cut-once") else None)

    async def cut_always(request: web.Request) -> web.StreamResponse:
        return await storage.ranged(request, stop=CUT)

    async def status(request: web.Request) -> web.StreamResponse:
        return web.Response(status=int(request.match_info["code"]), text="<Error>AccessDenied</Error>")

    async def ignore_range(request: web.Request) -> web.StreamResponse:
        return await storage.send(request, 200, 0)

    async def wrong_range(request: web.Request) -> web.StreamResponse:
        return await storage.send(request, 206 if "Range" in request.headers else 200, 0)

    async def unsatisfiable(request: web.Request) -> web.StreamResponse:
        if "Range" in request.headers:
            return web.Response(status=416, headers={"Content-Range": "bytes */999999999"})
        return await storage.send(request, 200, 0)

    async def corrupt(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"<html><body>Access denied</body></html>" * 100)

    async def slow(request: web.Request) -> web.StreamResponse:
        return await storage.send(request, 200, 0, pace=0.1)

    async def stall_once(request: web.Request) -> web.StreamResponse:
        if first_call("stall-once"):
            return await storage.hang(request, 0)
        return await storage.ranged(request)

    async def hang(request: web.Request) -> web.StreamResponse:
        return await storage.hang(request, range_start(request) or 0)

    async def capped(request: web.Request) -> web.StreamResponse:
        return await storage.ranged(request, cap=100_000)

    async def drip(request: web.Request) -> web.StreamResponse:
        return await storage.drip(request, range_start(request) or 0)

    async def slow_headers(request: web.Request) -> web.StreamResponse:
        await storage.release.wait()  # never answers while the test runs
        return await storage.ranged(request)

    async def short_length(request: web.Request) -> web.StreamResponse:
        # Announces (and so sends) only the first 200,000 bytes, as a complete 200 answer.
        return await storage.send(request, 200, 0, cap=200_000)

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        storage.requests.append((request.path.strip("/").split("/")[0], dict(request.headers)))
        return await handler(request)

    app = web.Application(middlewares=[record])
    for route, handler in {
        "ok": ok,
        "cut-once": cut_once,
        "cut-always": cut_always,
        "status/{code}": status,
        "ignore-range": ignore_range,
        "wrong-range": wrong_range,
        "unsatisfiable": unsatisfiable,
        "corrupt": corrupt,
        "slow": slow,
        "stall-once": stall_once,
        "hang": hang,
        "capped": capped,
        "drip": drip,
        "slow-headers": slow_headers,
        "short-length": short_length,
    }.items():
        app.router.add_get(f"/{route}", handler)
    return app


@dataclass
class Harness:
    """The storage server, a credential-free session, and where results go."""

    storage: Storage
    server: TestServer
    session: aiohttp.ClientSession
    out: Path

    def url(self, route: str) -> str:
        """A presigned-looking URL (with a secret query string) for `route`."""
        return str(self.server.make_url(f"/{route}")) + "?X-Amz-Signature=s3cr3t&X-Amz-Expires=3600"

    async def fetch(self, route: str, **kwargs: Any) -> Downloaded:
        """fetch_result() of `route` into out/video.mp4, bounded in time."""
        async with asyncio.timeout(20):
            return await fetch_result(self.session, self.url(route), self.final, **kwargs)

    @property
    def final(self) -> Path:
        """The final path used by `fetch`."""
        return self.out / "video.mp4"

    @property
    def part(self) -> Path:
        """The `.part` of `final`."""
        return part_path(self.final)


def observe_writes(monkeypatch: pytest.MonkeyPatch, storage: Storage) -> None:
    """Make every download report the bytes it has taken in (to memory or its .part) to `storage`."""
    real_add = landing.Part.add

    async def observed_add(self: landing.Part, chunk: bytes) -> None:
        await real_add(self, chunk)
        await storage.note_client_write(len(chunk))

    monkeypatch.setattr(landing.Part, "add", observed_add)


@pytest.fixture
async def harness(
    aiohttp_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    """A running storage server on 127.0.0.1 and a session without any Authorization header."""
    storage = Storage()
    observe_writes(monkeypatch, storage)
    server = await aiohttp_server(build_app(storage), host="127.0.0.1", shutdown_timeout=1)
    async with aiohttp.ClientSession() as session:
        yield Harness(storage, server, session, tmp_path / "out")
    storage.release.set()


async def test_download_writes_verified_file_with_sha256_and_size(harness: Harness) -> None:
    """A plain download lands at the final path with the right bytes, size and sha256, and no .part."""
    result = await harness.fetch("ok")
    assert result == Downloaded(path=harness.final, size=len(PAYLOAD), sha256=PAYLOAD_SHA)
    assert harness.final.read_bytes() == PAYLOAD
    assert not harness.part.exists()


async def test_request_carries_no_authorization_and_no_range(harness: Harness) -> None:
    """A fresh download sends no Authorization and no Range header, and asks for the bytes unencoded."""
    await harness.fetch("ok")
    (headers,) = harness.storage.headers_seen("ok")
    assert "Authorization" not in headers
    assert "Range" not in headers
    assert headers["Accept-Encoding"] == "identity"


async def test_session_with_credentials_is_refused_before_any_request(harness: Harness) -> None:
    """A session that would send the API key to the download host is a programming error."""
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer key"}) as session:
        with pytest.raises(RuntimeError, match="without credentials"):
            await fetch_result(session, harness.url("ok"), harness.final)
    assert harness.storage.requests == []


async def test_cut_download_resumes_with_range_without_refetching(harness: Harness) -> None:
    """A connection dropped after CUT bytes is resumed from byte CUT, and no byte is served twice."""
    result = await harness.fetch("cut-once")
    assert result.sha256 == PAYLOAD_SHA
    assert [h.get("Range") for h in harness.storage.headers_seen("cut-once")] == [None, f"bytes={CUT}-"]
    assert harness.storage.bytes_sent == len(PAYLOAD)


async def test_repeated_cuts_give_up_after_max_resumes_keeping_the_part(harness: Harness) -> None:
    """After max_resumes resumed cuts, DownloadError is raised and the .part holds every byte received."""
    with pytest.raises(DownloadError, match="gave up after 3") as caught:
        await harness.fetch("cut-always", max_resumes=2)
    assert type(caught.value) is DownloadError
    ranges = [h.get("Range") for h in harness.storage.headers_seen("cut-always")]
    assert ranges == [None, f"bytes={CUT}-", f"bytes={2 * CUT}-"]
    assert harness.part.read_bytes() == PAYLOAD[: 3 * CUT]
    assert not harness.final.exists()


async def test_existing_part_is_resumed_not_downloaded_again(harness: Harness) -> None:
    """A .part left by an earlier run is hashed and continued with Range; only the rest is served."""
    harness.out.mkdir()
    harness.part.write_bytes(PAYLOAD[:120_000])
    result = await harness.fetch("ok")
    assert (result.size, result.sha256) == (len(PAYLOAD), PAYLOAD_SHA)
    assert harness.storage.headers_seen("ok")[0]["Range"] == "bytes=120000-"
    assert harness.storage.bytes_sent == len(PAYLOAD) - 120_000


async def test_server_serving_ranges_in_pieces_is_followed_without_using_resumes(harness: Harness) -> None:
    """206 responses shorter than asked are continued with the next Range, even with max_resumes=0."""
    harness.out.mkdir()
    harness.part.write_bytes(PAYLOAD[:CUT])
    result = await harness.fetch("capped", max_resumes=0)
    assert result.sha256 == PAYLOAD_SHA
    ranges = [h["Range"] for h in harness.storage.headers_seen("capped")]
    assert ranges == [f"bytes={CUT + n * 100_000}-" for n in range(3)]


async def test_complete_part_is_finished_from_a_416_without_downloading(harness: Harness) -> None:
    """A .part already holding the whole file (crash before the rename) is verified and renamed."""
    harness.out.mkdir()
    harness.part.write_bytes(PAYLOAD)
    result = await harness.fetch("ok")
    assert result.sha256 == PAYLOAD_SHA
    assert harness.storage.bytes_sent == 0
    assert not harness.part.exists()


@pytest.mark.parametrize(
    ("route", "requests"),
    [
        pytest.param("ignore-range", 1, id="200-to-a-range-request"),
        pytest.param("wrong-range", 2, id="206-not-at-the-offset"),
        pytest.param("unsatisfiable", 2, id="416-range-not-satisfiable"),
    ],
)
async def test_server_refusing_the_range_restarts_from_zero(
    harness: Harness, route: str, requests: int
) -> None:
    """When the server does not continue at the .part's offset, the file is rebuilt from byte zero."""
    harness.out.mkdir()
    harness.part.write_bytes(b"stale bytes that must not survive" * 100)
    result = await harness.fetch(route)
    assert result.sha256 == PAYLOAD_SHA
    assert harness.final.read_bytes() == PAYLOAD
    assert len(harness.storage.headers_seen(route)) == requests


@pytest.mark.parametrize("code", [401, 403, 404, 410])
async def test_refused_url_raises_expired_and_keeps_the_part(harness: Harness, code: int) -> None:
    """401/403/404/410 mean the presigned URL is dead: DownloadExpired, the .part kept for the next URL."""
    harness.out.mkdir()
    harness.part.write_bytes(PAYLOAD[:CUT])
    with pytest.raises(DownloadExpired, match=f"HTTP {code}") as caught:
        await harness.fetch(f"status/{code}")
    assert "s3cr3t" not in str(caught.value)
    assert "Amz" not in str(caught.value)
    assert harness.part.read_bytes() == PAYLOAD[:CUT]
    assert not harness.final.exists()


@pytest.mark.parametrize("code", [429, 500, 503])
async def test_server_error_raises_transient_download_error(harness: Harness, code: int) -> None:
    """429 and 5xx are transient: a plain DownloadError (not Expired/Corrupt), .part kept, no retry loop."""
    harness.out.mkdir()
    harness.part.write_bytes(PAYLOAD[:CUT])
    with pytest.raises(DownloadError, match=f"HTTP {code}") as caught:
        await harness.fetch(f"status/{code}")
    assert type(caught.value) is DownloadError
    assert harness.part.read_bytes() == PAYLOAD[:CUT]
    assert len(harness.storage.requests) == 1


async def test_wrong_signature_raises_corrupt_and_leaves_no_file(harness: Harness) -> None:
    """A body that is not an MP4 (an HTML error page) is DownloadCorrupt; no final file, no .part."""
    with pytest.raises(DownloadCorrupt, match="not an MP4"):
        await harness.fetch("corrupt")
    assert not harness.final.exists()
    assert not harness.part.exists()


async def test_slow_but_progressing_download_is_not_killed(aiohttp_server: Any, tmp_path: Path) -> None:
    """read_timeout bounds each read, and a session-wide total timeout does not cut a slow download."""
    storage = Storage()
    server = await aiohttp_server(build_app(storage), host="127.0.0.1", shutdown_timeout=1)
    final = tmp_path / "slow.mp4"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as session:
        result = await fetch_result(session, str(server.make_url("/slow")), final, read_timeout=0.4)
    assert result.sha256 == PAYLOAD_SHA
    assert len(storage.requests) == 1


async def test_stalled_read_times_out_and_resumes(harness: Harness) -> None:
    """A connection that goes silent hits read_timeout and is resumed with Range from what arrived."""
    result = await harness.fetch("stall-once", read_timeout=0.3)
    assert result.sha256 == PAYLOAD_SHA
    assert [h.get("Range") for h in harness.storage.headers_seen("stall-once")] == [None, f"bytes={CUT}-"]


async def test_a_dripping_server_stalls_each_attempt_then_raises_download_stalled(harness: Harness) -> None:
    """One byte every 20 ms never trips the read timeout, but is under the minimum rate: each attempt
    ends after one window and resumes with Range; once the resumes are used up, DownloadStalled
    (a DownloadError) is raised, the URL's token is not shown, and the .part keeps what arrived."""
    with pytest.raises(DownloadStalled, match="gave up after 3 attempts that were too slow") as caught:
        await harness.fetch("drip", max_resumes=2, read_timeout=5, min_rate_bytes=1000, min_rate_window_s=0.3)
    assert isinstance(caught.value, DownloadError)
    assert "fewer than 1000 bytes in 0.3 s" in str(caught.value) and "s3cr3t" not in str(caught.value)
    ranges = [h.get("Range") for h in harness.storage.headers_seen("drip")]
    assert len(ranges) == 3 and ranges[0] is None
    offsets = [int(r.removeprefix("bytes=").removesuffix("-")) for r in ranges[1:] if r]
    assert 0 < offsets[0] < offsets[1] < 1000  # each attempt kept its few bytes and resumed after them
    kept = harness.part.read_bytes()
    assert len(kept) >= offsets[1] and PAYLOAD.startswith(kept)
    assert not harness.final.exists()


async def test_a_server_that_never_sends_its_headers_stalls_too(harness: Harness) -> None:
    """The rate window starts with the request: headers that never come end the attempt as a stall."""
    with pytest.raises(DownloadStalled, match="gave up after 1 attempts"):
        await harness.fetch("slow-headers", max_resumes=0, read_timeout=5, min_rate_window_s=0.2)


async def test_a_content_length_shorter_than_the_file_is_corrupt_not_kept(harness: Harness) -> None:
    """A complete-looking 200 whose Content-Length stops mid-file fails the MP4 box check at commit:
    DownloadCorrupt, nothing at the final path, the .part discarded."""
    with pytest.raises(DownloadCorrupt, match="needs 299976 bytes but the file has 199976 left"):
        await harness.fetch("short-length")
    assert not harness.final.exists() and not harness.part.exists()


@pytest.mark.parametrize("size", ["small", "large"])  # held in memory, or streamed by the writer thread
async def test_with_keep_corrupt_bytes_that_fail_verification_are_kept_whole_there(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, size: str
) -> None:
    """The caller's last try of a paid result: bytes that fail the MP4 box check are moved (not
    deleted) to `keep_corrupt`, whole, and UnverifiedKept says where, with their size, sha256 and
    the verifier's words; nothing at the final path, no .part left."""
    if size == "large":
        monkeypatch.setattr(landing, "SMALL_BYTES", 1024)
    keep = harness.out.parent / "unverified" / "abc" / "video.mp4"
    with pytest.raises(UnverifiedKept, match="kept there, unverified") as caught:
        await harness.fetch("short-length", keep_corrupt=keep)
    served = PAYLOAD[: len(keep.read_bytes())]
    assert keep.read_bytes() == served and len(served) < len(PAYLOAD)
    assert caught.value.path == keep and caught.value.size == len(served)
    assert caught.value.sha256 == hashlib.sha256(served).hexdigest()
    assert caught.value.problem.startswith("an MP4 box") and "needs 299976 bytes" in caught.value.problem
    assert not harness.final.exists() and not harness.part.exists()


async def test_a_cut_png_is_corrupt_when_its_content_length_agrees(harness: Harness) -> None:
    """An image whose body and Content-Length both stop before IEND is refused the same way."""
    harness.storage.payload = PNG[:-12] + bytes(4)
    with pytest.raises(DownloadCorrupt, match="a PNG without its final IEND chunk"):
        await harness.fetch("ok", media_type="image")
    assert not harness.final.exists() and not harness.part.exists()


async def test_the_emulators_drip_fault_ends_in_download_stalled(tmp_path: Path) -> None:
    """Against the emulator with downloads throttled to 200 B/s (20 bytes every 0.1 s), fetch_result
    with a 1000-byte / 0.3 s minimum gives up with DownloadStalled after its one resume."""
    faults = FaultConfig(download_bytes_per_second=200)
    async with (
        run_emulator(EmulatorConfig(time_scale=0.001, faults=faults)) as emu,
        aiohttp.ClientSession() as http,
    ):
        auth = {"Authorization": f"Bearer {emu.api_key}"}
        body = {"model": "kling-video-o3-pro-reference-to-video", "prompt": "a drip"}
        async with http.post(f"{emu.base_url}/api/ai/queue", json=body, headers=auth) as resp:
            (generation,) = (await resp.json())["generations"]
        async with asyncio.timeout(10):
            await emu.wait_for_status(generation["generation_id"], "succeeded")
        async with http.get(
            f"{emu.base_url}/api/ai/queue/{generation['generation_id']}", headers=auth
        ) as resp:
            url = (await resp.json())["result_url"]
        async with asyncio.timeout(10):
            with pytest.raises(DownloadStalled, match="gave up after 2 attempts that were too slow"):
                await fetch_result(
                    http, url, tmp_path / "v.mp4", max_resumes=1, min_rate_bytes=1000, min_rate_window_s=0.3
                )
    assert emu.counters.downloads == 2
    assert not (tmp_path / "v.mp4").exists()


@pytest.mark.parametrize("size", [0, 300_000, 3 * 1024 * 1024 + 7])
def test_the_emulator_results_pass_the_structure_checks(tmp_path: Path, size: int) -> None:
    """The emulator's MP4 (its top-level boxes, padded or not) and PNG pass verify_file's structure
    checks; the same bytes one short do not."""
    for media_type in ("video", "image"):
        content = make_result(media_type, "5f0c6a9e-0d7c-4f4e-9d1b-2a3b4c5d6e7f", size).read()
        path = tmp_path / f"result-{media_type}"
        path.write_bytes(content)
        assert verify_file(path, media_type).size == len(content) == max(size, len(content))
        path.write_bytes(content[:-1])
        with pytest.raises(DownloadCorrupt):
            verify_file(path, media_type)


def test_rate_guard_deadline_slides_with_the_bytes_that_arrive() -> None:
    """No verdict before one window; then the deadline is one window after the latest arrival that,
    with the ones after it, makes up the minimum; older arrivals are forgotten."""
    guard = RateGuard(100, 10.0, now=0.0)
    assert guard.deadline() == 10.0
    guard.add(60, now=1.0)
    assert guard.deadline() == 10.0  # 60 < 100: still judged at the end of the first window
    guard.add(60, now=2.0)
    assert guard.deadline() == 11.0  # 120 bytes since t=1: fine until the t=1 bytes leave the window
    guard.add(100, now=15.0)
    assert guard.deadline() == 25.0  # the last 100 bytes alone suffice: the rest is forgotten
    assert guard.describe() == "fewer than 100 bytes in 10 s"


async def test_cancellation_propagates_and_leaves_no_final_file(harness: Harness) -> None:
    """Cancelling mid-download re-raises CancelledError and leaves at most a resumable .part."""
    task = asyncio.create_task(harness.fetch("hang"))
    async with asyncio.timeout(5):
        await harness.storage.sent.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert not harness.final.exists()
    if harness.part.exists():
        assert PAYLOAD.startswith(harness.part.read_bytes())


async def test_parent_that_is_a_file_raises_storage_error(harness: Harness, tmp_path: Path) -> None:
    """An output directory that cannot be created is a StorageError naming the path, before any request."""
    (tmp_path / "blocker").write_text("a file, not a directory")
    final = tmp_path / "blocker" / "sub" / "video.mp4"
    with pytest.raises(StorageError, match="blocker") as caught:
        await fetch_result(harness.session, harness.url("ok"), final)
    assert "s3cr3t" not in str(caught.value)
    assert harness.storage.requests == []


async def test_disk_full_on_write_raises_storage_error(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while writing is a StorageError naming the .part and the OS reason, never the URL's token."""
    real_open = landing._open_part_file

    class Full(io.BufferedWriter):
        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def open_then_fail_writes(path: Path, *, append: bool) -> Any:
        real = real_open(path, append=append)
        real.close()
        return Full(io.FileIO(path, "ab"))

    monkeypatch.setattr(landing, "_open_part_file", open_then_fail_writes)
    with pytest.raises(StorageError, match="No space left on device") as caught:
        await harness.fetch("ok")
    assert str(harness.part) in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
    assert not harness.final.exists()


@pytest.mark.parametrize("which", ["final", "part"])
async def test_symlink_at_final_or_part_path_is_refused(harness: Harness, tmp_path: Path, which: str) -> None:
    """A symlink planted at the final path or its .part is refused, and its target is not written."""
    target = tmp_path / "elsewhere"
    target.write_bytes(b"precious")
    harness.out.mkdir()
    (harness.final if which == "final" else harness.part).symlink_to(target)
    with pytest.raises(StorageError, match="symlink"):
        await harness.fetch("ok")
    assert target.read_bytes() == b"precious"
    assert harness.storage.requests == []


async def test_creates_missing_parent_directories(harness: Harness) -> None:
    """Missing directories above the final path are created."""
    final = harness.out / "a" / "b" / "clip.mp4"
    result = await fetch_result(harness.session, harness.url("ok"), final)
    assert result.path == final
    assert final.read_bytes() == PAYLOAD


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        (
            "https://hub.oxen.ai/api/repos/ns/r/files/main/v.mp4?sig=abc&exp=1",
            "https://hub.oxen.ai/api/repos/ns/r/files/main/v.mp4",
        ),
        ("https://user:pw@cdn.example:8443/x.mp4#frag", "https://cdn.example:8443/x.mp4"),
        ("http://[::1", "<unparsable URL>"),
    ],
)
def test_redact_url_drops_query_fragment_and_credentials(url: str, safe: str) -> None:
    """URLs shown in messages lose everything that may hold a presigned token."""
    assert redact_url(url) == safe


@pytest.mark.parametrize(
    ("final", "part"),
    [("out/a.mp4", "out/a.mp4.part"), ("noext", "noext.part"), ("/abs/x.y.png", "/abs/x.y.png.part")],
)
def test_part_path_appends_dot_part_to_the_name(final: str, part: str) -> None:
    """The .part sits next to the final file, with `.part` appended to the full name."""
    assert part_path(Path(final)) == Path(part)


PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(28) + PNG_IEND
JPEG = b"\xff\xd8\xff\xe0" + bytes(40) + b"\xff\xd9"
WEBP = b"RIFF\x20\x00\x00\x00WEBPVP8 " + bytes(24)  # RIFF size 32 = the 40-byte file minus 8
GIF = b"GIF89a" + bytes(40) + b"\x3b"


def box(kind: bytes, body: bytes, *, size: int | None = None, large: bool = False) -> bytes:
    """One MP4 box; `size` overrides the recorded size, `large` records it as a 64-bit largesize."""
    if large:
        return (1).to_bytes(4, "big") + kind + (size or 16 + len(body)).to_bytes(8, "big") + body
    return (8 + len(body) if size is None else size).to_bytes(4, "big") + kind + body


FTYP = box(b"ftyp", b"isom" + (512).to_bytes(4, "big") + b"isomiso2")


@pytest.mark.parametrize(
    ("content", "media_type", "valid"),
    [
        pytest.param(PAYLOAD, "video", True, id="mp4-ftyp"),
        pytest.param(box(b"wide", b"") + box(b"mdat", bytes(8), size=0), "video", True, id="quicktime-wide"),
        pytest.param(FTYP + box(b"mdat", bytes(100), large=True), "video", True, id="mp4-largesize"),
        pytest.param(FTYP + box(b"mdat", bytes(100), size=0), "video", True, id="mp4-last-box-to-end"),
        pytest.param(PAYLOAD[:-1], "video", False, id="mp4-cut-short"),
        pytest.param(PAYLOAD + b"\0", "video", False, id="mp4-stray-byte-after-last-box"),
        pytest.param(
            FTYP + box(b"mdat", bytes(100), size=4), "video", False, id="mp4-box-smaller-than-its-header"
        ),
        pytest.param(
            FTYP + box(b"mdat", bytes(100), size=15, large=True), "video", False, id="mp4-bad-largesize"
        ),
        pytest.param(
            FTYP + box(b"mdat", bytes(100), size=10**9, large=True),
            "video",
            False,
            id="mp4-largesize-past-end",
        ),
        pytest.param(PNG[:-12], "image", False, id="png-without-iend"),
        pytest.param(JPEG[:-2], "image", False, id="jpeg-without-eoi"),
        pytest.param(GIF[:-1], "image", False, id="gif-without-trailer"),
        pytest.param(WEBP[:-1], "image", False, id="webp-riff-size-mismatch"),
        pytest.param(
            (99_999).to_bytes(4, "big") + b"ftyp" + bytes(40), "video", False, id="ftyp-box-too-big"
        ),
        pytest.param(b"<?xml version='1.0'?><Error/>", "video", False, id="xml-error-page"),
        pytest.param(b"", "video", False, id="empty"),
        pytest.param(PNG, "image", True, id="png"),
        pytest.param(JPEG, "image", True, id="jpeg"),
        pytest.param(WEBP, "image", True, id="webp"),
        pytest.param(GIF, "image", True, id="gif"),
        pytest.param(b"RIFF\x20\x00\x00\x00WAVEfmt " + bytes(40), "image", False, id="riff-wave-not-webp"),
        pytest.param(PAYLOAD, "image", False, id="mp4-is-not-an-image"),
        pytest.param(PNG, "video", False, id="png-is-not-a-video"),
    ],
)
def test_verify_file_checks_signatures(tmp_path: Path, content: bytes, media_type: str, valid: bool) -> None:
    """verify_file accepts only files whose first bytes match the media type, and reports size and sha256."""
    path = tmp_path / "result"
    path.write_bytes(content)
    if valid:
        assert verify_file(path, media_type) == Downloaded(
            path, len(content), hashlib.sha256(content).hexdigest()
        )
    else:
        with pytest.raises(DownloadCorrupt, match=str(path)):
            verify_file(path, media_type)


def test_verify_file_compares_expected_size_and_sha256(tmp_path: Path) -> None:
    """A valid-looking file whose size or hash differs from the record is DownloadCorrupt."""
    path = tmp_path / "v.mp4"
    path.write_bytes(PAYLOAD)
    assert verify_file(path, "video", expected_size=len(PAYLOAD), expected_sha256=PAYLOAD_SHA.upper()).size
    with pytest.raises(DownloadCorrupt, match="expected 1"):
        verify_file(path, "video", expected_size=1)
    with pytest.raises(DownloadCorrupt, match="sha256"):
        verify_file(path, "video", expected_sha256="0" * 64)


def test_verify_file_missing_is_corrupt_and_symlink_is_refused(tmp_path: Path) -> None:
    """A missing file must be fetched again (DownloadCorrupt); a symlink is never trusted (StorageError)."""
    with pytest.raises(DownloadCorrupt, match="does not exist"):
        verify_file(tmp_path / "missing.mp4", "video")
    (tmp_path / "real.mp4").write_bytes(PAYLOAD)
    (tmp_path / "link.mp4").symlink_to(tmp_path / "real.mp4")
    with pytest.raises(StorageError, match="symlink"):
        verify_file(tmp_path / "link.mp4", "video")


def test_unknown_media_type_is_a_programming_error(tmp_path: Path) -> None:
    """A media type other than image/video is rejected loudly rather than skipping verification."""
    with pytest.raises(ValueError, match="media_type"):
        verify_file(tmp_path / "x", "audio")


async def test_a_large_result_streams_to_its_part_and_a_cut_call_resumes_from_disk(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past SMALL_BYTES a result is written (and hashed) by a writer thread as it arrives: a call that gives
    up leaves every byte received in the .part, and the next call resumes it with Range."""
    monkeypatch.setattr(landing, "SMALL_BYTES", 10_000)
    with pytest.raises(DownloadError, match="gave up after 1"):
        await harness.fetch("cut-always", max_resumes=0)
    assert harness.part.read_bytes() == PAYLOAD[:CUT]
    result = await harness.fetch("ok")
    assert (result.size, result.sha256) == (len(PAYLOAD), PAYLOAD_SHA)
    assert [h.get("Range") for h in harness.storage.headers_seen("ok")] == [f"bytes={CUT}-"]
    assert not harness.part.exists() and harness.final.read_bytes() == PAYLOAD


async def test_a_small_result_lands_in_one_worker_hop(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small result is written, fsynced, verified and renamed in a single thread hop, and `land` runs in it."""
    hops: list[str] = []
    real_to_thread = asyncio.to_thread

    async def counting_to_thread(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__name__", repr(func)))
        return await real_to_thread(func, *args, **kwargs)

    monkeypatch.setattr(landing.asyncio, "to_thread", counting_to_thread)
    landed: list[Downloaded] = []
    harness.out.mkdir()
    result = await harness.fetch("ok", land=landed.append)
    assert hops == ["_land_bytes"] and landed == [result]
