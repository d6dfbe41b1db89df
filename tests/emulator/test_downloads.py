"""Result downloads: presigned (no key), Range, expiry, distinct bytes with known sha256."""

from __future__ import annotations

import hashlib
import struct
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import aiohttp
import pytest

from batchgen.emulator import ManualClock

from .support import Api, image, video

FORBIDDEN_TYPE = "forbidden"


async def fetch(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
    async with session.get(url, **kwargs) as resp:
        return resp.status, dict(resp.headers), await resp.read()


def top_level_boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of each top-level MP4 box."""
    boxes, offset = [], 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        boxes.append((kind, data[offset + 8 : offset + size]))
        offset += size
    assert offset == len(data)
    return boxes


async def test_result_downloads_without_key(api: Api, session: aiohttp.ClientSession) -> None:
    """result_url answers 200 video/mp4 with Content-Length, no Authorization needed; sha256 matches."""
    row = await api.finished_row(video())
    status, headers, body = await fetch(session, row["result_url"])
    assert status == 200
    assert headers["Content-Type"] == "video/mp4"
    assert int(headers["Content-Length"]) == len(body)
    assert hashlib.sha256(body).hexdigest() == api.emu.result_sha256(row["generation_id"])
    assert api.emu.counters.bytes_served == len(body)


async def test_result_is_a_real_mp4_tagged_with_the_generation(
    api: Api, session: aiohttp.ClientSession
) -> None:
    """The MP4 parses into ftyp/moov/mdat boxes and ends with a 'free' box naming the generation."""
    row = await api.finished_row(video())
    _, _, body = await fetch(session, row["result_url"])
    boxes = top_level_boxes(body)
    kinds = [kind for kind, _ in boxes]
    assert kinds[0] == b"ftyp" and {b"moov", b"mdat"} <= set(kinds)
    assert kinds[-1] == b"free"
    assert row["generation_id"].encode() in boxes[-1][1]


async def test_each_generation_has_distinct_bytes(api: Api, session: aiohttp.ClientSession) -> None:
    """Two generations of the same request produce different files (and different sha256)."""
    ids = await api.enqueue(video(num_generations=2))
    await api.emu.wait_idle()
    bodies = [await fetch(session, (await api.row(i))["result_url"]) for i in ids]
    assert bodies[0][2] != bodies[1][2]
    assert api.emu.result_sha256(ids[0]) != api.emu.result_sha256(ids[1])


async def test_image_results_are_valid_png(api: Api, session: aiohttp.ClientSession) -> None:
    """Image models serve image/png whose chunks all carry valid CRCs, tagged with the generation."""
    import zlib

    row = await api.finished_row(image())
    status, headers, body = await fetch(session, row["result_url"])
    assert (status, headers["Content-Type"]) == (200, "image/png")
    assert body.startswith(b"\x89PNG\r\n\x1a\n")
    offset, kinds = 8, []
    while offset < len(body):
        (length,) = struct.unpack(">I", body[offset : offset + 4])
        kind, data = body[offset + 4 : offset + 8], body[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", body[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + data) == crc, kind
        kinds.append(kind)
        offset += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    assert row["generation_id"].encode() in body


@pytest.mark.parametrize(
    ("header", "lo", "hi"),
    [
        ("bytes=100-", 100, None),
        ("bytes=0-9", 0, 10),
        ("bytes=-50", -50, None),
        ("bytes=10-999999", 10, None),
    ],
)
async def test_range_requests(
    api: Api, session: aiohttp.ClientSession, header: str, lo: int, hi: int | None
) -> None:
    """Range: bytes=... answers 206 with Content-Range and exactly those bytes."""
    row = await api.finished_row(video())
    _, _, whole = await fetch(session, row["result_url"])
    status, headers, part = await fetch(session, row["result_url"], headers={"Range": header})
    assert status == 206
    assert part == whole[lo:hi]
    first = lo if lo >= 0 else len(whole) + lo
    assert headers["Content-Range"] == f"bytes {first}-{first + len(part) - 1}/{len(whole)}"
    assert int(headers["Content-Length"]) == len(part)


async def test_unsatisfiable_range_is_416(api: Api, session: aiohttp.ClientSession) -> None:
    """A range starting past the end is 416 with Content-Range: bytes */size."""
    row = await api.finished_row(video())
    size = api.emu.generation(row["generation_id"]).result.size  # type: ignore[union-attr]
    status, headers, _ = await fetch(session, row["result_url"], headers={"Range": f"bytes={size}-"})
    assert (status, headers["Content-Range"]) == (416, f"bytes */{size}")


async def test_malformed_range_serves_everything(api: Api, session: aiohttp.ClientSession) -> None:
    """A range the server does not understand is ignored: 200 with the whole file."""
    row = await api.finished_row(video())
    status, headers, body = await fetch(session, row["result_url"], headers={"Range": "bytes=0-1,5-9"})
    assert status == 200
    assert int(headers["Content-Length"]) == len(body) > 10


async def test_head_sends_headers_only(api: Api, session: aiohttp.ClientSession) -> None:
    """HEAD on a result URL gives its type and length without counting a download."""
    row = await api.finished_row(video())
    async with session.head(row["result_url"]) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "video/mp4"
        size = int(resp.headers["Content-Length"])
    assert size == api.emu.generation(row["generation_id"]).result.size  # type: ignore[union-attr]
    assert api.emu.counters.downloads == 0


async def test_expired_url_is_403_and_a_fresh_one_works(start: Any, session: aiohttp.ClientSession) -> None:
    """After url_ttl_seconds the URL is refused with 403; GET /api/ai/queue/{id} mints a new working one."""
    clock = ManualClock()
    api = Api(await start(clock=clock, url_ttl_seconds=60), session)
    row = await api.finished_row(video())
    clock.advance(61)
    status, _, body = await fetch(session, row["result_url"])
    assert status == 403
    assert b'"title": "Request has expired"' in body
    fresh = (await api.row(row["generation_id"]))["result_url"]
    assert fresh != row["result_url"]
    assert (await fetch(session, fresh))[0] == 200


def tamper(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())))


@pytest.mark.parametrize("change", [{"signature": "0" * 64}, {"expires": "99999999999.000"}])
async def test_tampered_url_is_403(api: Api, session: aiohttp.ClientSession, change: dict[str, str]) -> None:
    """Changing the signature or the expiry invalidates the URL (403 with an error envelope)."""
    row = await api.finished_row(video())
    async with session.get(tamper(row["result_url"], **change)) as resp:
        assert resp.status == 403
        payload = await resp.json()
    assert payload["error"] == {"type": FORBIDDEN_TYPE, "title": "Signature does not match"}


async def test_url_without_token_is_403(api: Api, session: aiohttp.ClientSession) -> None:
    """The result path without its query token is refused."""
    row = await api.finished_row(video())
    status, _, _ = await fetch(session, row["result_url"].split("?")[0])
    assert status == 403


async def test_result_size_padding(make_api: Any, session: aiohttp.ClientSession) -> None:
    """result_size_bytes pads the file to exactly that size, still a valid box structure."""
    api = await make_api(result_size_bytes=300_000)
    row = await api.finished_row(video())
    _, headers, body = await fetch(session, row["result_url"])
    assert len(body) == int(headers["Content-Length"]) == 300_000
    assert top_level_boxes(body)[-1][0] == b"free"
    assert hashlib.sha256(body).hexdigest() == api.emu.result_sha256(row["generation_id"])


async def test_result_sha256_of_unfinished_generation_raises(api: Api) -> None:
    """result_sha256 raises KeyError for an unknown id or a generation without a result."""
    with pytest.raises(KeyError):
        api.emu.result_sha256("nope")
    row = await api.finished_row({"model": "flux-2-pro"})
    with pytest.raises(KeyError):
        api.emu.result_sha256(row["generation_id"])
