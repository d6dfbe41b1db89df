"""Repository files: multipart PUT (file / files[]) as one commit, GET at a branch or a commit id."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from .repo_support import PNG, create_repo, form, png, put, put_ok
from .support import KLING, Api


async def test_upload_then_get_public_file(api: Api, session: aiohttp.ClientSession) -> None:
    """PUT .../file/main/{path} stores the bytes; GET of the same URL serves them with their type, no key."""
    await create_repo(api)
    status, payload = await put(api, "main/refs/a.png", [png("a.png")])
    assert status == 200
    assert (payload["status"], payload["status_message"]) == ("success", "resource_created")
    assert payload["commit"].keys() == {"id", "parent_ids", "message", "author", "email", "timestamp"}
    assert (payload["commit"]["message"], payload["commit"]["author"]) == ("add ref", "Me")
    async with session.get(api.url("/api/repos/me/assets/file/main/refs/a.png")) as resp:
        assert resp.status == 200
        assert resp.content_type == "image/png"
        assert await resp.read() == PNG
    assert (api.emu.counters.uploads, api.emu.counters.commits) == (1, 1)


async def test_content_type_is_guessed_from_the_path(api: Api, session: aiohttp.ClientSession) -> None:
    """A part sent as application/octet-stream is served with the type its path implies."""
    await create_repo(api)
    await put_ok(api, "main/b.jpg", [("file", "b.jpg", b"\xff\xd8\xff", "application/octet-stream")])
    async with session.get(api.url("/api/repos/me/assets/file/main/b.jpg")) as resp:
        assert resp.content_type == "image/jpeg"


async def test_files_array_is_one_commit_into_the_directory(api: Api) -> None:
    """files[] parts land under {path}/{filename}, all in one commit that lists them as added."""
    await create_repo(api)
    parts = [png("x.mp4", b"video", "files[]"), png("x.json", b"{}", "files[]")]
    commit_id = await put_ok(api, "main/campaigns/spring", parts)
    files = api.emu.repo_files("me", "assets")
    assert (files["campaigns/spring/x.mp4"].data, files["campaigns/spring/x.json"].data) == (b"video", b"{}")
    (commit,) = api.emu.repo_commits("me", "assets")
    assert commit.id == commit_id
    assert set(commit.added) == {"campaigns/spring/x.mp4", "campaigns/spring/x.json"}
    assert (api.emu.counters.uploads, api.emu.counters.commits) == (2, 1)


async def test_several_file_parts_go_into_the_directory(api: Api) -> None:
    """Several 'file' parts (the docs' multiple-files example) are stored under {path}/{filename}."""
    await create_repo(api)
    await put_ok(api, "main/images", [png("x.png"), png("y.png", PNG + b"y")])
    assert set(api.emu.repo_files("me", "assets")) == {"images/x.png", "images/y.png"}


async def test_single_file_into_an_existing_directory(api: Api) -> None:
    """One 'file' part whose {path} is an existing directory goes into it, as oxen-server does."""
    await create_repo(api)
    await put_ok(api, "main/images/a.png", [png("a.png")])
    await put_ok(api, "main/images", [png("b.png")])
    assert set(api.emu.repo_files("me", "assets")) == {"images/a.png", "images/b.png"}


@pytest.mark.parametrize(
    ("where", "files", "fields", "detail"),
    [
        ("main/a.png", [], {}, "Missing file data: expected `file` or `files[]` multipart parts"),
        (
            "main/a.png",
            [png("a.png"), png("b.png", field="files[]")],
            {},
            "Ambiguous multipart payload: use either `file` or `files[]`, not both",
        ),
        ("main/a.png", [png("a.png")], {"email": ""}, "Missing form field: email"),
        ("main/", [png("a.png")], {}, "Invalid target path: expected a full file path for `file` uploads"),
        ("main/dir", [png("..", field="files[]")], {}, "Invalid uploaded file: '..'"),
    ],
)
async def test_bad_uploads_are_400(
    api: Api, where: str, files: list[Any], fields: dict[str, str], detail: str
) -> None:
    """Missing or ambiguous parts, missing author fields, no file path, or a bad filename: 400 bad_request."""
    await create_repo(api)
    status, payload = await put(api, where, files, **fields)
    assert status == 400
    assert (payload["error"]["type"], payload["error"]["detail"]) == ("bad_request", detail)
    assert api.emu.counters.commits == 0


async def test_files_cannot_go_under_a_file(api: Api) -> None:
    """files[] onto an existing file, or a file below an existing file, is 400 and commits nothing."""
    await create_repo(api)
    await put_ok(api, "main/a.png", [png("a.png")])
    status, payload = await put(api, "main/a.png", [png("b.png", field="files[]")])
    assert (status, payload["error"]["detail"]) == (400, "Target path must be a directory: a.png")
    status, payload = await put(api, "main/a.png/b.png", [png("b.png")])
    assert (status, payload["error"]["detail"]) == (400, "Target path must be a directory: a.png/b.png")
    assert api.emu.counters.commits == 1


async def test_upload_to_a_missing_repo_is_404(api: Api) -> None:
    """PUT into a repository that does not exist is 404 with oxen-server's status_description."""
    status, payload = await put(api, "main/a.png", [png("a.png")], repo="me/nope")
    assert status == 404
    assert payload["status_message"] == "resource_not_found"
    assert payload["status_description"] == "Repository 'me/nope' not found"


async def test_upload_to_a_missing_branch_is_404(api: Api) -> None:
    """Once a repository has commits, PUT to a branch it does not have is 404 'Branch does not exist'."""
    await create_repo(api)
    await put_ok(api, "main/a.png", [png("a.png")])
    status, payload = await put(api, "dev/a.png", [png("a.png")])
    assert status == 404
    assert (payload["error"]["title"], payload["error"]["detail"]) == (
        "Branch does not exist",
        "Could not find branch: dev",
    )


async def test_first_upload_to_an_empty_repo_creates_the_branch(api: Api) -> None:
    """A new repository has no branch; its first upload makes the root commit and the branch it names."""
    await create_repo(api)
    assert (await api.request("GET", "/api/repos/me/assets/branches/main"))[0] == 404
    commit_id = await put_ok(api, "main/a.png", [png("a.png")])
    status, payload = await api.request("GET", "/api/repos/me/assets/branches/main")
    assert (status, payload["branch"]["commit_id"]) == (200, commit_id)
    assert payload["branch"]["commit"]["parent_ids"] == []


async def test_auto_create_repos(make_api: Any) -> None:
    """With auto_create_repos, an upload creates its repository."""
    api = await make_api(auto_create_repos=True)
    status, _ = await put(api, "main/a.png", [png("a.png")], repo="me/new")
    assert status == 200


async def test_missing_file_is_404(api: Api, session: aiohttp.ClientSession) -> None:
    """GET of a file that does not exist is 404 with the resource_not_found envelope."""
    async with session.get(api.url("/api/repos/elau/assets/file/main/nope.png")) as resp:
        assert resp.status == 404
        assert (await resp.json())["status_message"] == "resource_not_found"


async def test_get_at_a_branch_or_a_commit(api: Api, session: aiohttp.ClientSession) -> None:
    """GET at a branch serves the newest version; GET at a commit id serves the version of that commit."""
    await create_repo(api)
    first = await put_ok(api, "main/report.html", [("file", "report.html", b"v1", "text/html")])
    second = await put_ok(api, "main/report.html", [("file", "report.html", b"v2", "text/html")])
    for revision, expected in (("main", b"v2"), (first, b"v1"), (second, b"v2")):
        async with session.get(api.url(f"/api/repos/me/assets/file/{revision}/report.html")) as resp:
            assert (resp.status, await resp.read()) == (200, expected), revision


async def test_uploaded_reference_reaches_the_model(api: Api) -> None:
    """An uploaded image's hub URL (any host) is fetched by the model and recorded."""
    await create_repo(api)
    await put_ok(api, "main/refs/a.png", [png("a.png")])
    url = "https://hub.oxen.ai/api/repos/me/assets/file/main/refs/a.png"
    row = await api.finished_row({"model": KLING, "prompt": "@Image1 waves", "input_image": [url]})
    assert row["status"] == "succeeded"
    assert url in api.emu.fetched_references


async def test_upload_without_key_is_401(api: Api, session: aiohttp.ClientSession) -> None:
    """PUT needs the Bearer key even though GET does not."""
    await create_repo(api)
    async with session.put(
        api.url("/api/repos/me/assets/file/main/a.png"), data=form([png("a.png")])
    ) as resp:
        assert resp.status == 401
    assert api.emu.counters.commits == 0
