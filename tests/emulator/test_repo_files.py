"""Repositories: create, multipart upload (PUT), public GET, and uploaded files as model references."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from .support import KLING, Api

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def form(files: list[tuple[str, str, bytes, str]], **fields: str) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, filename, payload, content_type in files:
        data.add_field(name, payload, filename=filename, content_type=content_type)
    defaults = {"message": "add ref", "name": "Me", "email": "me@example.com"}
    for key, value in {**defaults, **fields}.items():
        data.add_field(key, value)
    return data


async def create_repo(api: Api, namespace: str = "me", name: str = "assets") -> tuple[int, Any]:
    body = {
        "namespace": namespace,
        "name": name,
        "user": {"name": "Me", "email": "me@example.com"},
        "description": "refs",
    }
    return await api.request("POST", "/api/repos", json=body)


async def test_create_repo_then_conflict(api: Api) -> None:
    """POST /api/repos creates a repository (200) and answers 409 when it already exists."""
    status, payload = await create_repo(api)
    assert status == 200
    assert (payload["status"], payload["status_message"]) == ("success", "resource_created")
    assert payload["repository"]["name"] == "assets"
    status, payload = await create_repo(api)
    assert status == 409
    assert payload["status_message"] == "resource_already_exists"


async def test_upload_then_get_public_file(api: Api, session: aiohttp.ClientSession) -> None:
    """PUT .../file/main/{path} stores the bytes; GET of the same URL serves them with their type, no key."""
    await create_repo(api)
    path = "/api/repos/me/assets/file/main/refs/a.png"
    status, payload = await api.request("PUT", path, data=form([("file", "a.png", PNG, "image/png")]))
    assert status == 200
    assert (payload["status"], payload["status_message"]) == ("success", "resource_created")
    assert payload["commit"].keys() == {"id", "parent_ids", "message", "author", "email", "timestamp"}
    assert (payload["commit"]["message"], payload["commit"]["author"]) == ("add ref", "Me")
    async with session.get(api.url(path)) as resp:
        assert resp.status == 200
        assert resp.content_type == "image/png"
        assert await resp.read() == PNG
    assert api.emu.counters.uploads == 1


async def test_content_type_is_guessed_from_the_path(api: Api, session: aiohttp.ClientSession) -> None:
    """A part sent as application/octet-stream is served with the type its path implies."""
    await create_repo(api)
    path = "/api/repos/me/assets/file/main/b.jpg"
    await api.request(
        "PUT", path, data=form([("file", "b.jpg", b"\xff\xd8\xff", "application/octet-stream")])
    )
    async with session.get(api.url(path)) as resp:
        assert resp.content_type == "image/jpeg"


async def test_several_files_go_into_the_directory(api: Api, session: aiohttp.ClientSession) -> None:
    """Several 'file' parts (or files[]) are stored under {path}/{filename}; commits chain."""
    await create_repo(api)
    parts = [("file", "x.png", PNG, "image/png"), ("file", "y.png", PNG + b"y", "image/png")]
    _, first = await api.request("PUT", "/api/repos/me/assets/file/main/images", data=form(parts))
    _, second = await api.request(
        "PUT", "/api/repos/me/assets/file/main/more", data=form([("files[]", "z.png", PNG, "image/png")])
    )
    for name in ("images/x.png", "images/y.png", "more/z.png"):
        async with session.get(api.url(f"/api/repos/me/assets/file/main/{name}")) as resp:
            assert resp.status == 200, name
    assert second["commit"]["parent_ids"] == [first["commit"]["id"]]


@pytest.mark.parametrize(
    ("files", "fields", "detail"),
    [
        ([], {}, "No file provided: send the binary in a 'file' form field"),
        (
            [("file", "a.png", PNG, "image/png"), ("files[]", "b.png", PNG, "image/png")],
            {},
            "Cannot upload both 'file' and 'files[]' in one request",
        ),
        ([("file", "a.png", PNG, "image/png")], {"email": ""}, "Missing form field: email"),
    ],
)
async def test_bad_uploads_are_400(api: Api, files: list[Any], fields: dict[str, str], detail: str) -> None:
    """Uploads without a file, with both file and files[], or without author fields are 400."""
    await create_repo(api)
    status, payload = await api.request(
        "PUT", "/api/repos/me/assets/file/main/a.png", data=form(files, **fields)
    )
    assert status == 400
    assert payload["error"]["detail"] == detail


async def test_upload_to_missing_repo_or_branch_is_404(api: Api) -> None:
    """Uploading into a repository that was not created, or to another branch, is 404."""
    data = form([("file", "a.png", PNG, "image/png")])
    assert (await api.request("PUT", "/api/repos/me/nope/file/main/a.png", data=data))[0] == 404
    await create_repo(api)
    data = form([("file", "a.png", PNG, "image/png")])
    assert (await api.request("PUT", "/api/repos/me/assets/file/dev/a.png", data=data))[0] == 404


async def test_auto_create_repos(make_api: Any) -> None:
    """With auto_create_repos, an upload creates its repository."""
    api = await make_api(auto_create_repos=True)
    status, _ = await api.request(
        "PUT", "/api/repos/me/new/file/main/a.png", data=form([("file", "a.png", PNG, "image/png")])
    )
    assert status == 200


async def test_missing_file_is_404(api: Api, session: aiohttp.ClientSession) -> None:
    """GET of a file that does not exist is 404 with the resource_not_found envelope."""
    async with session.get(api.url("/api/repos/elau/assets/file/main/nope.png")) as resp:
        assert resp.status == 404
        assert (await resp.json())["status_message"] == "resource_not_found"


async def test_uploaded_reference_reaches_the_model(api: Api) -> None:
    """An uploaded image's hub URL (any host) is fetched by the model and recorded."""
    await create_repo(api)
    await api.request(
        "PUT", "/api/repos/me/assets/file/main/refs/a.png", data=form([("file", "a.png", PNG, "image/png")])
    )
    url = "https://hub.oxen.ai/api/repos/me/assets/file/main/refs/a.png"
    row = await api.finished_row({"model": KLING, "prompt": "@Image1 waves", "input_image": [url]})
    assert row["status"] == "succeeded"
    assert url in api.emu.fetched_references


async def test_upload_without_key_is_401(api: Api, session: aiohttp.ClientSession) -> None:
    """PUT needs the Bearer key even though GET does not."""
    await create_repo(api)
    async with session.put(
        api.url("/api/repos/me/assets/file/main/a.png"), data=form([("file", "a.png", PNG, "image/png")])
    ) as resp:
        assert resp.status == 401
