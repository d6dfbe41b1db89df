"""Body sizes: PUT .../file's in-memory form limit, the proxy cap in front of the hub, streaming routes
that no body limit stops, and bytes held once (in repositories, and for large results)."""

from __future__ import annotations

import asyncio
import io
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp

from .repo_support import REPO, commit, create_repo, form, put, raw_request, seeded_repo, stage, workspace
from .support import Api, image

MiB = 1024 * 1024
T = TypeVar("T")


async def peak_memory(action: Callable[[], Awaitable[T]]) -> tuple[T, int]:
    """What ``action`` returns, and the peak of Python allocations while it ran (client and emulator:
    both live in this process), in bytes."""
    tracemalloc.start()
    try:
        result = await action()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def text_part(name: str, size: int) -> tuple[str, str, bytes, str]:
    return ("file", name, b"x" * size, "text/plain")


async def test_a_put_over_2_mib_is_a_plain_400_before_any_work(api: Api) -> None:
    """More than 2 MiB of form data in one PUT: actix-multipart's 400 'Payload error' as plain text, read
    no further than the limit, with no commit and nothing counted as received. (The body is kept small:
    aiohttp's client stops sending a long unread tail once answered, and the server then lingers.)"""
    await create_repo(api)
    data = b"x" * (5 * MiB)

    async def pieces() -> AsyncIterator[bytes]:  # sent as it is read: the client holds no copy
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    async def send() -> tuple[int, str, str]:
        body = aiohttp.FormData(quote_fields=False)
        body.add_field("file", pieces(), filename="big.bin", content_type="application/octet-stream")
        body.add_fields(("name", "Me"), ("email", "me@example.com"))
        async with api.session.put(api.url(f"{REPO}/file/main/big.bin"), data=body, headers=api.auth) as resp:
            return resp.status, resp.content_type, await resp.text()

    (status, kind, text), peak = await peak_memory(send)
    assert (status, kind, text) == (400, "text/plain", "Payload error")
    assert peak < 4 * MiB  # refused once past 2 MiB: the 5 MiB were never held
    assert (api.emu.counters.commits, len(api.emu.counters.files_received)) == (0, 0)


async def test_text_fields_count_against_the_limit_too(api: Api) -> None:
    """File data and the name, email and message fields share the 2 MiB: exactly 2 MiB in all passes,
    one byte more does not."""
    await create_repo(api)
    fields = {"message": "m", "name": "n", "email": "e"}
    exact = 2 * MiB - 3
    status, payload = await put(api, "main/a.bin", [text_part("a.bin", exact)], **fields)
    assert status == 200, payload
    status, _, text = await raw_request(
        api,
        "PUT",
        f"{REPO}/file/main/b.bin",
        data=form([text_part("b.bin", exact)], **{**fields, "message": "mm"}),
    )
    assert (status, text) == (400, "Payload error")


async def test_the_limit_is_a_knob_and_50_mib_stays(make_api: Any) -> None:
    """put_file_memory_limit_bytes=None lifts the 2 MiB limit (a 3 MB part commits); actix's 50 MiB total
    still applies. A smaller limit refuses smaller forms."""
    api = await make_api(put_file_memory_limit_bytes=None)
    await create_repo(api)
    assert (await put(api, "main/a.bin", [text_part("a.bin", 3 * MiB)]))[0] == 200
    status, _, text = await raw_request(
        api, "PUT", f"{REPO}/file/main/b.bin", data=form([text_part("b.bin", 50 * MiB)])
    )
    assert (status, text) == (400, "Payload error")
    small = await make_api(put_file_memory_limit_bytes=1000)
    await create_repo(small)
    status, _, text = await raw_request(
        small, "PUT", f"{REPO}/file/main/c.bin", data=form([text_part("c.bin", 1000)])
    )
    assert (status, text) == (400, "Payload error")


async def test_streaming_routes_take_bodies_far_over_max_upload_bytes(make_api: Any) -> None:
    """max_upload_bytes (aiohttp's client_max_size) does not stop the files route or a chunk: a 70 MB
    part is staged and a 70 MB chunk stored with the limit at 1 MiB."""
    api = await make_api(max_upload_bytes=MiB)
    await seeded_repo(api)
    await workspace(api)
    data = bytes(range(256)) * (70_000_000 // 256)
    status, payload = await stage(api, "ws-1", "big", [("file", "a.bin", data, "application/octet-stream")])
    assert (status, payload["paths"]) == (200, ["big/a.bin"])
    status, _ = await api.request("PUT", f"{REPO}/versions/abc/chunks?offset=0", data=io.BytesIO(data))
    assert status == 200
    status, payload = await api.request(
        "PUT", f"{REPO}/workspaces", json={"workspace_id": "w", "branch_name": "main"}
    )
    assert status == 200  # a small JSON body is still fine


async def test_the_proxy_cap_answers_413_before_the_emulator(make_api: Any) -> None:
    """max_request_bytes: a body over the cap gets a plain 413 and never reaches a route (nothing staged,
    counted as proxy_413), whether its length is announced or not; one under it goes through."""
    api = await make_api(max_request_bytes=MiB)
    await seeded_repo(api)
    await workspace(api)
    status, kind, _ = await raw_request(
        api, "POST", f"{REPO}/workspaces/ws-1/files/d", data=form([text_part("a.bin", 2 * MiB)])
    )
    assert (status, kind) == (413, "text/plain")

    async def chunked(size: int) -> AsyncIterator[bytes]:
        for _ in range(size // 65536):
            yield b"y" * 65536

    status, _, _ = await raw_request(
        api, "PUT", f"{REPO}/versions/abc/chunks?offset=0", data=chunked(2 * MiB)
    )
    assert status == 413
    status, _ = await api.request("PUT", f"{REPO}/versions/abc/chunks?offset=0", data=chunked(MiB))
    assert status == 200
    assert api.emu.counters.faults["proxy_413"] == 2
    assert api.emu.workspaces("me", "assets")[0].staged == ()
    body = {"files": [{"hash": "abc", "file_name": "x", "num_chunks": 1}]}
    status, payload = await api.request("POST", f"{REPO}/versions/abc/complete", json=body)
    assert payload["error"]["title"].startswith("Hash mismatch")  # the whole 1 MiB chunk arrived


async def test_repositories_hold_each_files_bytes_once(api: Api) -> None:
    """About 100 MB staged and committed, then another commit: every tree shares one StoredFile per
    version of a file, so the bytes are not copied per commit."""
    await seeded_repo(api)
    await workspace(api)
    first, second = b"a" * (50 * MiB), b"b" * (50 * MiB)
    await stage(api, "ws-1", "v", [("file", "1.bin", first, "application/octet-stream")])
    await stage(api, "ws-1", "v", [("file", "2.bin", second, "application/octet-stream")])
    assert (await commit(api, "ws-1"))[0] == 200
    big = api.emu.repo_commits("me", "assets")[-1].id
    await workspace(api, "ws-2")
    await stage(api, "ws-2", "", [("file", "small.txt", b"s", "text/plain")])
    assert (await commit(api, "ws-2"))[0] == 200
    before, after = api.emu.repo_files("me", "assets", big), api.emu.repo_files("me", "assets")
    assert after["v/1.bin"] is before["v/1.bin"] and after["v/2.bin"].data is before["v/2.bin"].data
    assert len(after["v/1.bin"].data) + len(after["v/2.bin"].data) == 100 * MiB


async def test_large_results_are_served_without_holding_them(make_api: Any) -> None:
    """result_size_bytes pads results while streaming: a 50 MB result is downloaded whole while the
    process holds a few MB at most."""
    size = 50_000_000
    api = await make_api(result_size_bytes=size)
    row = await api.finished_row(image())

    async def download() -> int:
        total = 0
        async with api.session.get(row["result_url"]) as resp:
            async for piece in resp.content.iter_chunked(MiB):
                total += len(piece)
        return total

    received, peak = await peak_memory(lambda: asyncio.wait_for(download(), 60))
    assert received == size
    assert peak < 16 * MiB
