"""The chunked version upload: POST .../versions/{hash}/create, PUT .../chunks?offset=, POST .../complete."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import xxhash

from .repo_support import REPO, commit, raw_request, seeded_repo, workspace
from .support import Api

CHUNK = 10 * 1024 * 1024  # what liboxen's client sends per chunk


def version_of(data: bytes) -> str:
    return format(xxhash.xxh3_128_intdigest(data), "x")


async def send_chunks(api: Api, version: str, data: bytes, chunk: int = CHUNK) -> int:
    """PUT every chunk of ``data`` (last one first, as parallel uploads may); how many were sent."""
    offsets = list(range(0, len(data), chunk))
    for offset in reversed(offsets):
        url = f"{REPO}/versions/{version}/chunks?offset={offset}"
        status, payload = await api.request("PUT", url, data=io.BytesIO(data[offset : offset + chunk]))
        assert (status, payload["status_message"]) == (200, "resource_created"), payload
    return len(offsets)


def complete_body(version: str, chunks: int, **extra: Any) -> str:
    file = {"hash": version, "file_name": "big.mp4", "dst_dir": "videos", "num_chunks": chunks}
    return json.dumps({"files": [file], **extra})


async def complete(api: Api, version: str, body: str) -> tuple[int, Any]:
    return await api.request("POST", f"{REPO}/versions/{version}/complete", data=body)


async def test_a_25_mb_file_through_create_chunks_complete(api: Api) -> None:
    """Three chunks joined in offset order, checked against XXH3-128, staged into the workspace at
    dst_dir/file_name, then committed; the chunks are gone afterwards."""
    await seeded_repo(api)
    await workspace(api)
    data = bytes(range(256)) * (25_000_000 // 256)
    version = version_of(data)
    events: list[tuple[str, Any]] = []
    api.emu.counters.listeners.append(lambda event, detail: events.append((event, detail)))
    status, payload = await api.request("POST", f"{REPO}/versions/{version}/create", json={"hash": version})
    assert (status, payload["status_message"]) == (200, "resource_found")
    chunks = await send_chunks(api, version, data)
    status, payload = await complete(api, version, complete_body(version, chunks, workspace_id="ws-1"))
    assert (status, payload) == (
        200,
        {"status": "success", "status_message": "resource_found", "oxen_version": "0.54.0"},
    )
    assert (await commit(api, "ws-1"))[0] == 200
    assert api.emu.repo_file("me", "assets", "videos/big.mp4").sha256 == hashlib.sha256(data).hexdigest()
    assert api.emu.counters.chunks_received == 3
    assert [d for e, d in events if e == "chunk_stored"] == [
        (version, 2 * CHUNK),
        (version, CHUNK),
        (version, 0),
    ]
    assert ("version_completed", (version, "videos/big.mp4")) in events
    assert api.emu.counters.files_received[("videos/big.mp4", hashlib.sha256(data).hexdigest())] == 1
    status, payload = await complete(api, version, complete_body(version, chunks, workspace_id="ws-1"))
    assert (status, payload["status_message"]) == (500, "internal_server_error")  # no chunk directory left


async def test_a_wrong_hash_is_500_and_keeps_the_chunks(api: Api) -> None:
    """Chunks that do not hash to the version id: 500 (HashMismatch has no arm of its own), and the
    chunks stay: a second complete fails on the hash again, not for want of chunks."""
    await seeded_repo(api)
    data = b"x" * 1000
    claimed = version_of(b"other bytes")
    await send_chunks(api, claimed, data, chunk=400)
    status, payload = await complete(api, claimed, complete_body(claimed, 3))
    assert (status, payload["error"]["type"]) == (500, "internal_server_error")
    assert payload["error"]["title"].startswith("Hash mismatch writing")
    status, payload = await complete(api, claimed, complete_body(claimed, 3))
    assert (status, payload["error"]["title"].startswith("Hash mismatch")) == (500, True)  # still there


async def test_a_repeated_chunk_is_kept_not_replaced(api: Api) -> None:
    """A second chunk at an offset already stored is ignored: the first one's bytes are assembled."""
    await seeded_repo(api)
    await workspace(api)
    data = b"first-half" + b"second-half"
    version = version_of(data)
    await api.request("PUT", f"{REPO}/versions/{version}/chunks?offset=0", data=data[:10])
    await api.request("PUT", f"{REPO}/versions/{version}/chunks?offset=0", data=b"XXXXXXXXXX")
    await api.request("PUT", f"{REPO}/versions/{version}/chunks?offset=10", data=data[10:])
    status, _ = await complete(api, version, complete_body(version, 2, workspace_id="ws-1"))
    assert status == 200
    assert api.emu.workspaces("me", "assets")[0].staged == ("videos/big.mp4",)
    assert api.emu.counters.chunks_received == 3


async def test_a_hash_is_compared_as_a_number(api: Api) -> None:
    """The id is parsed as a hex u128 (MerkleHash::from_str): upper case and leading zeros match too."""
    await seeded_repo(api)
    data = b"abc"
    version = "000" + version_of(data).upper()
    await send_chunks(api, version, data)
    assert (await complete(api, version, complete_body(version, 1)))[0] == 200


async def test_complete_refusals(api: Api) -> None:
    """A body that is not a CompleteVersionUploadRequest, several files, neither num_chunks nor
    upload_results, or a chunk count that differs: 400, and the chunks stay."""
    await seeded_repo(api)
    version = version_of(b"abc")
    await send_chunks(api, version, b"abc")
    one = {"hash": version, "file_name": "a"}
    cases: list[tuple[Any, int, str]] = [
        ("{", 400, "Invalid request body"),
        ({"files": [{"file_name": "a"}]}, 400, "Invalid request body"),
        ({"files": [{**one, "num_chunks": 1}] * 2}, 400, "Expected a single file in the request"),
        (
            {"files": [{**one, "num_chunks": 2}]},
            400,
            "Number of chunks does not match expected number of chunks: 1 != 2",
        ),
    ]
    for body, status, message in cases:
        got, payload = await complete(api, version, body if isinstance(body, str) else json.dumps(body))
        assert (got, payload["status"], payload["status_message"]) == (status, "error", message), body
    got, payload = await complete(api, version, json.dumps({"files": [one]}))
    assert (got, payload["error"]["detail"]) == (400, "Missing both num_chunks and upload_results in request")
    got, _ = await complete(api, version, json.dumps({"files": [{**one, "upload_results": [{"etag": "x"}]}]}))
    assert got == 200  # an old client's upload_results count as the number of chunks


async def test_a_missing_workspace_is_404_after_assembling(api: Api) -> None:
    """With an unknown workspace_id the version is assembled (its chunks gone), then 404."""
    await seeded_repo(api)
    version = version_of(b"abc")
    await send_chunks(api, version, b"abc")
    status, payload = await complete(api, version, complete_body(version, 1, workspace_id="nope"))
    assert (status, payload["status_message"]) == (404, "Workspace not found: nope")
    assert (await complete(api, version, complete_body(version, 1)))[0] == 500


async def test_the_staging_path_is_not_validated(api: Api) -> None:
    """dst_dir/file_name is not checked; only its plain components make the staged path."""
    await seeded_repo(api)
    await workspace(api)
    version = version_of(b"abc")
    await send_chunks(api, version, b"abc")
    body = {
        "files": [{"hash": version, "file_name": "a.bin", "dst_dir": "/x/../y/./", "num_chunks": 1}],
        "workspace_id": "ws-1",
    }
    assert (await complete(api, version, json.dumps(body)))[0] == 200
    assert api.emu.workspaces("me", "assets")[0].staged == ("x/y/a.bin",)


async def test_offset_must_be_an_integer(api: Api) -> None:
    """A non-integer offset is actix's plain-text 400; no offset means 0."""
    await seeded_repo(api)
    status, kind, text = await raw_request(api, "PUT", f"{REPO}/versions/abc/chunks?offset=x", data=b"1")
    assert (status, kind, text) == (
        400,
        "text/plain",
        "Query deserialize error: invalid digit found in string",
    )
    assert (await api.request("PUT", f"{REPO}/versions/abc/chunks", data=b"1"))[0] == 200
    assert api.emu.counters.chunks_received == 1


async def test_the_complete_body_is_limited_to_20_mib(api: Api) -> None:
    """/complete reads its body under a 20 MiB PayloadConfig: past that, actix's plain 413."""
    await seeded_repo(api)
    body = b'{"files":[],"pad":"' + b"x" * (20 * 1024 * 1024) + b'"}'
    status, kind, text = await raw_request(
        api, "POST", f"{REPO}/versions/abc/complete", data=io.BytesIO(body)
    )
    assert (status, kind, text) == (413, "text/plain", "payload reached size limit")


async def test_a_hub_that_does_not_serve_version_uploads(make_api: Any) -> None:
    """serve_version_uploads=False: the three routes are 404."""
    api = await make_api(serve_version_uploads=False)
    await seeded_repo(api)
    for method, suffix in (("POST", "create"), ("PUT", "chunks?offset=0"), ("POST", "complete")):
        status, payload = await api.request(method, f"{REPO}/versions/abc/{suffix}", data=b"{}")
        assert (status, payload["status_message"]) == (404, "resource_not_found"), suffix
