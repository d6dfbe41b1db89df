"""Staging into a workspace (POST .../files/{dir}) and reading back what is staged (GET .../changes)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from yarl import URL

from .repo_support import PNG, REPO, commit, png, raw_request, seeded_repo, stage, workspace
from .support import Api

FILES = f"{REPO}/workspaces/ws-1/files"


def raw_multipart(*parts: tuple[str, bytes]) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body of (Content-Disposition value, bytes) parts, built by hand."""
    body = b""
    for disposition, payload in parts:
        body += f"--XyZ\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + payload + b"\r\n"
    return body + b"--XyZ--\r\n", {"Content-Type": "multipart/form-data; boundary=XyZ"}


async def staged_paths(api: Api, workspace_id: str = "ws-1", under: str = "") -> list[str]:
    status, payload = await api.request("GET", f"{REPO}/workspaces/{workspace_id}/changes/{under}")
    assert status == 200, payload
    staged = payload["staged"]
    return [e["filename"] for kind in ("added_files", "modified_files") for e in staged[kind]["entries"]]


async def test_file_parts_are_staged_under_the_directory(api: Api) -> None:
    """Every `file` and `file[]` part is staged at {dir}/{filename}; a '/' in the filename makes
    subdirectories; an empty {dir} is the root. The answer lists the repository paths."""
    await seeded_repo(api)
    await workspace(api)
    parts = [png("a.png", b"a"), png("sub/b.png", b"b", "file[]"), png("c.png", b"c", "file[]")]
    status, payload = await stage(api, "ws-1", "out/run", parts)
    assert (status, payload["status_message"]) == (200, "resource_created")
    assert payload["paths"] == ["out/run/a.png", "out/run/sub/b.png", "out/run/c.png"]
    assert (await stage(api, "ws-1", "", [png("top.png")]))[1]["paths"] == ["top.png"]
    assert await staged_paths(api) == ["out/run/a.png", "out/run/c.png", "out/run/sub/b.png", "top.png"]
    (live,) = api.emu.workspaces("me", "assets")
    assert live.staged == ("out/run/a.png", "out/run/c.png", "out/run/sub/b.png", "top.png")


async def test_files_array_parts_are_ignored(api: Api) -> None:
    """Only `file` and `file[]` count: `files[]` (the PUT route's field) stages nothing, and the commit
    then has nothing to commit."""
    await seeded_repo(api)
    await workspace(api)
    status, payload = await stage(api, "ws-1", "out", [png("a.png", field="files[]")])
    assert (status, payload["paths"]) == (200, [])
    assert (await commit(api, "ws-1"))[0] == 422


async def test_filenames_are_stored_as_sent(api: Api) -> None:
    """The filename is taken literally: UTF-8, spaces, '(' and '+' as they are; '%20' stays '%20' (no
    percent-decoding); aiohttp's default quoting therefore lands as an escaped name."""
    await seeded_repo(api)
    await workspace(api)
    name = "hero (red)+é 1.mp4"
    await stage(
        api, "ws-1", "v", [("file", name, b"1", "video/mp4"), ("file", "a%20b.mp4", b"2", "video/mp4")]
    )
    quoted = aiohttp.FormData()  # quote_fields=True: aiohttp percent-encodes the filename
    quoted.add_field("file", b"3", filename="q (1).mp4", content_type="video/mp4")
    status, payload = await api.request("POST", f"{FILES}/v", data=quoted)
    assert (status, payload["paths"]) == (200, ["v/q%20%281%29.mp4"])
    assert await staged_paths(api) == ["v/a%20b.mp4", f"v/{name}", "v/q%20%281%29.mp4"]
    assert (await commit(api, "ws-1"))[0] == 200
    assert api.emu.repo_file("me", "assets", f"v/{name}").data == b"1"


async def test_a_directory_in_the_url_is_decoded_except_protected_escapes(api: Api) -> None:
    """{dir} is read as actix-router leaves it: %20 and %C3%A9 decoded, %2F kept (one literal segment)."""
    await seeded_repo(api)
    await workspace(api)
    for directory, expected in (("caf%C3%A9%20x", "café x/a.png"), ("a%2Fb", "a%2Fb/a.png")):
        data = aiohttp.FormData(quote_fields=False)
        data.add_field("file", PNG, filename="a.png", content_type="image/png")
        url = URL(api.url(f"{FILES}/{directory}"), encoded=True)
        async with api.session.post(url, data=data, headers=api.auth) as resp:
            assert (resp.status, (await resp.json())["paths"]) == (200, [expected])


async def test_a_part_without_a_filename_is_400(api: Api) -> None:
    """A counted part needs a plain `filename` (filename* does not count): 400 bad_request 'Missing hash
    in multipart request', and nothing is staged."""
    await seeded_repo(api)
    await workspace(api)
    for disposition in ('form-data; name="file"', "form-data; name=\"file\"; filename*=UTF-8''a%20b.png"):
        body, headers = raw_multipart(('form-data; name="file"; filename="ok.png"', PNG), (disposition, PNG))
        status, payload = await api.request("POST", f"{FILES}/d", data=body, headers=headers)
        assert status == 400, disposition
        assert payload == {
            "error": {
                "type": "bad_request",
                "title": "Bad Request",
                "detail": "Missing hash in multipart request",
            },
            "status": "error",
            "status_message": "bad_request",
        }
    assert await staged_paths(api) == []


async def test_a_non_multipart_body_is_415(api: Api) -> None:
    """A body that is not multipart at all: actix-multipart's 415, inside the handler, so JSON."""
    await seeded_repo(api)
    await workspace(api)
    status, payload = await api.request("POST", f"{FILES}/d", json={"file": "x"})
    assert (status, payload["error"]["type"]) == (415, "bad_request")
    assert payload["error"]["detail"] == 'Parsed Content-Type did not have "multipart" top-level media type'


async def test_gzip_parts_are_inflated_and_capped(api: Api) -> None:
    """application/gzip parts are inflated (liboxen's client sends every small file so); one that inflates
    past 10 MiB, or is not gzip, is dropped silently while the others are staged."""
    await seeded_repo(api)
    await workspace(api)
    parts = [
        ("file[]", "small.csv", gzip.compress(b"a,b\n1,2\n"), "application/gzip"),
        ("file[]", "bomb.bin", gzip.compress(bytes(10 * 1024 * 1024 + 1)), "application/gzip"),
        ("file[]", "broken.bin", b"not gzip", "application/gzip"),
        ("file[]", "exact.bin", gzip.compress(bytes(10 * 1024 * 1024)), "application/gzip"),
    ]
    status, payload = await stage(api, "ws-1", "z", parts)
    assert (status, payload["paths"]) == (200, ["z/small.csv", "z/exact.bin"])
    assert (await commit(api, "ws-1"))[0] == 200
    small = api.emu.repo_file("me", "assets", "z/small.csv")
    assert (small.data, small.content_type) == (b"a,b\n1,2\n", "text/csv")


async def test_the_first_bad_path_refuses_the_whole_request(api: Api) -> None:
    """Each path is `validate_and_normalize_path(dir/filename)`: '.' and empty segments vanish; '..' or an
    absolute filename refuse the request with 400, staging none of its files."""
    await seeded_repo(api)
    await workspace(api)
    assert (await stage(api, "ws-1", "a/./b", [png(".//c.png")]))[1]["paths"] == ["a/b/c.png"]
    for filename, reason in (
        ("../x.png", "path cannot contain parent directory references (..)"),
        ("/etc/x.png", "path must be relative, not absolute"),
        (".", "path resolves to empty after normalization"),
    ):
        directory = "" if filename == "." else "out"
        status, payload = await stage(api, "ws-1", directory, [png("fine.png"), png(filename)])
        assert status == 400, filename
        detail = f'Invalid staging path (directory "{directory}", file "{filename}"): {reason}'
        assert (payload["error"]["type"], payload["error"]["detail"]) == ("bad_request", detail)
    assert await staged_paths(api) == ["a/b/c.png"]


async def test_a_missing_workspace_is_404_before_the_body_is_read(api: Api) -> None:
    """The workspace is looked up first: the 404 arrives while the client is still sending the body."""
    await seeded_repo(api)
    answered = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        await answered.wait()
        yield b"\r\n--XyZ--\r\n"

    headers = {**api.auth, "Content-Type": "multipart/form-data; boundary=XyZ"}
    async with asyncio.timeout(10):
        async with api.session.post(
            api.url(f"{REPO}/workspaces/nope/files/d"), data=body(), headers=headers
        ) as resp:
            answered.set()
            assert (resp.status, (await resp.json())["status_description"]) == (
                404,
                "Workspace not found: nope",
            )


async def test_bytes_equal_to_the_base_are_listed_but_not_staged(api: Api) -> None:
    """A file whose bytes equal the base commit's is in the answer's paths, not in the changes, and
    leaves whatever was staged at that path before (liboxen skips it)."""
    await seeded_repo(api)
    await workspace(api)
    events: list[tuple[str, Any]] = []
    api.emu.counters.listeners.append(lambda event, detail: events.append((event, detail)))
    base = ("file", "base.txt", b"base", "text/plain")
    assert (await stage(api, "ws-1", "", [base]))[1]["paths"] == ["base.txt"]
    assert await staged_paths(api) == []
    await stage(api, "ws-1", "", [("file", "base.txt", b"new", "text/plain")])
    await stage(api, "ws-1", "", [base])
    assert await staged_paths(api) == ["base.txt"]
    assert [e for e in events if e[0] == "staged"] == [("staged", ("ws-1", ["base.txt"]))] * 3
    received = api.emu.counters.files_received
    assert received[("base.txt", hashlib.sha256(b"base").hexdigest())] == 3  # the PUT, and two stagings


async def test_a_6_mb_file_part_and_another_file_make_one_commit(api: Api) -> None:
    """No 2 MiB limit here: a 6 MB `file` part is staged whole and committed with another file."""
    await seeded_repo(api)
    await workspace(api)
    big = bytes(range(256)) * (6_000_000 // 256)
    await stage(api, "ws-1", "videos", [("file", "big.mp4", big, "video/mp4")])
    await stage(api, "ws-1", "videos", [("file", "big.json", b"{}", "application/json")])
    status, payload = await commit(api, "ws-1")
    assert status == 200
    last = api.emu.repo_commits("me", "assets")[-1]
    assert (last.id, sorted(last.added)) == (payload["commit"]["id"], ["videos/big.json", "videos/big.mp4"])
    assert api.emu.repo_file("me", "assets", "videos/big.mp4").sha256 == hashlib.sha256(big).hexdigest()


async def test_changes_shape(api: Api) -> None:
    """GET .../changes: `staged` holds added_dirs (SummarizedStagedDirStats) and added/modified/removed
    files, each a PaginatedDirEntries of MetadataEntry as remote_staged_status.rs builds them."""
    await seeded_repo(api)
    await workspace(api)
    await stage(api, "ws-1", "", [("file", "base.txt", b"changed", "text/plain"), png("d/e/new.png")])
    status, payload = await api.request("GET", f"{REPO}/workspaces/ws-1/changes")
    assert (status, payload["status_message"], payload["oxen_version"]) == (200, "resource_found", "0.54.0")
    staged = payload["staged"]
    assert staged["added_dirs"] == {
        "num_files_staged": 2,
        "total_files": 0,
        "paths": {
            "": [{"path": "", "num_files_staged": 1, "total_files": 0, "status": "Added"}],
            "d": [{"path": "d/e", "num_files_staged": 1, "total_files": 0, "status": "Added"}],
        },
    }
    entry = {
        "filename": "d/e/new.png",
        "hash": "",
        "is_dir": False,
        "latest_commit": None,
        "resource": None,
        "size": 0,
        "data_type": "binary",
        "mime_type": "application/octet-stream",
        "extension": "png",
        "metadata": None,
        "is_queryable": None,
    }
    page = {"dir": None, "resource": None, "metadata": None, "page_size": 100, "page_number": 1}
    assert staged["added_files"] == {**page, "entries": [entry], "total_pages": 1, "total_entries": 1}
    assert [e["filename"] for e in staged["modified_files"]["entries"]] == ["base.txt"]
    assert staged["removed_files"] == {**page, "entries": [], "total_pages": 0, "total_entries": 0}


async def test_changes_pages_and_paths(api: Api) -> None:
    """page / page_size apply to each list; page_size=0 is 400; a path keeps whole components under it;
    a non-integer is actix's plain 400."""
    await seeded_repo(api)
    await workspace(api)
    await stage(api, "ws-1", "", [png(f"a/{n}.png", bytes([n])) for n in range(5)] + [png("ab/x.png")])
    status, payload = await api.request("GET", f"{REPO}/workspaces/ws-1/changes?page=2&page_size=2")
    added = payload["staged"]["added_files"]
    assert [e["filename"] for e in added["entries"]] == ["a/2.png", "a/3.png"]
    assert (added["page_number"], added["total_pages"], added["total_entries"]) == (2, 3, 6)
    assert await staged_paths(api, under="a") == [f"a/{n}.png" for n in range(5)]
    status, payload = await api.request("GET", f"{REPO}/workspaces/ws-1/changes?page_size=0")
    assert (status, payload["error"]["detail"]) == (400, "page_size must be at least 1")
    status, kind, _ = await raw_request(api, "GET", f"{REPO}/workspaces/ws-1/changes?page=x")
    assert (status, kind) == (400, "text/plain")


async def test_counters_snapshot_lists_received_files(api: Api) -> None:
    """snapshot() carries files_received as JSON-safe rows, and the workspace counts."""
    await seeded_repo(api)
    await workspace(api)
    await stage(api, "ws-1", "", [png("a.png")])
    snapshot = api.emu.counters.snapshot()
    row = {"path": "a.png", "sha256": hashlib.sha256(PNG).hexdigest(), "times": 1}
    assert row in snapshot["files_received"]
    assert (snapshot["workspaces_created"], snapshot["workspaces_deleted"], snapshot["chunks_received"]) == (
        1,
        0,
        0,
    )
    assert json.loads(json.dumps(snapshot))["files_received"] == snapshot["files_received"]
