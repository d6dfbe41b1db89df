"""Repository files: multipart PUT (file / files[]) as one commit, GET at a branch or a commit id."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from .repo_support import PNG, create_repo, form, png, put, put_ok, raw_request
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


async def test_only_the_first_file_part_is_kept(api: Api) -> None:
    """Of several 'file' parts (the docs' multiple-files example) only the first is read, and it goes to
    the full path {path}; the others are skipped unread, as actix's MultipartForm does."""
    await create_repo(api)
    await put_ok(api, "main/images/a.png", [png("x.png"), png("y.png", PNG + b"y")])
    files = api.emu.repo_files("me", "assets")
    assert (set(files), files["images/a.png"].data) == ({"images/a.png"}, PNG)


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
        ("main/a.png", [png("a.png")], {"email": None}, "Email is required"),
        ("main/a.png", [png("a.png")], {"name": None, "email": None}, "Name is required"),
        ("main/dir", [png("..", field="files[]")], {}, "Invalid uploaded file: path cannot be empty"),
        ("main/dir", [png('/?<>\\:*|"', field="files[]")], {}, "Invalid uploaded file: path cannot be empty"),
    ],
)
async def test_bad_uploads_are_400(
    api: Api, where: str, files: list[Any], fields: dict[str, str | None], detail: str
) -> None:
    """Missing or ambiguous parts, a missing name or email, no file path, a name that sanitizes to nothing
    or a traversal: 400 bad_request with oxen-server's wording, and no commit."""
    await create_repo(api)
    await put_ok(api, "main/seed.txt", [("file", "seed.txt", b"seed", "text/plain")])
    status, payload = await put(api, where, files, **fields)
    assert status == 400, payload
    assert (payload["error"]["type"], payload["error"]["detail"]) == ("bad_request", detail)
    assert api.emu.counters.commits == 1


async def test_a_file_part_for_the_root(api: Api) -> None:
    """`file` to the branch itself: refused in an empty repository (no full path), but stored at the
    root once there is one, which is an existing directory."""
    await create_repo(api)
    status, payload = await put(api, "main/", [png("a.png")])
    detail = "Invalid target path: expected a full file path for `file` uploads"
    assert (status, payload["error"]["detail"]) == (400, detail)
    await put_ok(api, "main/seed.txt", [("file", "seed.txt", b"seed", "text/plain")])
    await put_ok(api, "main/", [png("a.png")])
    assert set(api.emu.repo_files("me", "assets")) == {"seed.txt", "a.png"}


async def test_message_is_optional_with_the_servers_default(api: Api) -> None:
    """Without `message` the first commit of an empty repository says "Initial commit", and later ones
    "Auto-commit files to {path}"; an empty email is still an email."""
    await create_repo(api)
    await put_ok(api, "main/refs/a.png", [png("a.png")], message=None)
    await put_ok(api, "main/refs", [png("b.png", field="files[]")], message=None, email="")
    first, second = api.emu.repo_commits("me", "assets")
    assert (first.message, second.message, second.email) == (
        "Initial commit",
        "Auto-commit files to refs",
        "",
    )


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
    """Once a repository has commits, a resource naming no branch or commit is 404 'Path does not exist';
    one naming a commit id (not a branch) is 404 'Branch does not exist'."""
    await create_repo(api)
    head = await put_ok(api, "main/a.png", [png("a.png")])
    status, payload = await put(api, "dev/a.png", [png("a.png")])
    assert status == 404
    assert (payload["error"]["title"], payload["error"]["detail"]) == (
        "Path does not exist",
        "Could not find path: dev/a.png",
    )
    status, payload = await put(api, f"{head}/a.png", [png("a.png", b"other")])
    assert (status, payload["error"]["detail"]) == (404, f"Could not find branch: Branch '{head}' not found")


async def test_first_upload_to_an_empty_repo_creates_the_branch(api: Api) -> None:
    """A new repository has no branch; its first upload makes the root commit and the branch it names."""
    await create_repo(api)
    assert (await api.request("GET", "/api/repos/me/assets/branches/main"))[0] == 404
    commit_id = await put_ok(api, "main/a.png", [png("a.png")])
    status, payload = await api.request("GET", "/api/repos/me/assets/branches/main")
    assert (status, payload["branch"]) == (200, {"name": "main", "commit_id": commit_id})
    assert api.emu.repo_commits("me", "assets")[0].parent_ids == ()


async def test_auto_create_repos(make_api: Any) -> None:
    """With auto_create_repos, an upload creates its repository."""
    api = await make_api(auto_create_repos=True)
    status, _ = await put(api, "main/a.png", [png("a.png")], repo="me/new")
    assert status == 200


async def test_missing_file_is_404(api: Api, session: aiohttp.ClientSession) -> None:
    """GET of a file that does not exist, or of a directory, is 404 'Path does not exist'."""
    for path in ("main/nope.png", "main/bloxy"):
        async with session.get(api.url(f"/api/repos/elau/assets/file/{path}")) as resp:
            payload = await resp.json()
            assert (resp.status, payload["error"]["title"]) == (404, "Path does not exist"), path


async def test_get_at_a_branch_or_a_commit(api: Api, session: aiohttp.ClientSession) -> None:
    """GET at a branch serves the newest version; GET at a commit id serves the version of that commit."""
    await create_repo(api)
    first = await put_ok(api, "main/report.html", [("file", "report.html", b"v1", "text/html")])
    second = await put_ok(api, "main/report.html", [("file", "report.html", b"v2", "text/html")])
    for revision, expected in (("main", b"v2"), (first, b"v1"), (second, b"v2")):
        async with session.get(api.url(f"/api/repos/me/assets/file/{revision}/report.html")) as resp:
            assert (resp.status, await resp.read()) == (200, expected), revision
            assert resp.headers["oxen-revision-id"] == (first if expected == b"v1" else second)
    async with session.head(api.url("/api/repos/me/assets/file/main/report.html")) as resp:
        assert (resp.status, resp.headers["Content-Length"], resp.headers["oxen-revision-id"]) == (
            200,
            "2",
            second,
        )


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


async def test_part_filenames_are_sanitized_never_decoded(api: Api) -> None:
    """PUT runs part names through sanitize_filename: '/', '?', ':' and the like are dropped, and
    nothing is percent-decoded: UTF-8, spaces, '(' and '+' stay, '%20' stays '%20', and aiohttp's
    default quoting lands escaped."""
    await create_repo(api)
    parts = [
        png("hero (red)+é 1.png", b"1", "files[]"),
        png("a%20b.png", b"2", "files[]"),
        png("we:ird?<na>me.png", b"3", "files[]"),
    ]
    await put_ok(api, "main/refs", parts)
    quoted = form([png("q (1).png", b"4", "files[]")], quote_fields=True)
    status, _, _ = await raw_request(api, "PUT", "/api/repos/me/assets/file/main/refs", data=quoted)
    assert status == 200
    assert set(api.emu.repo_files("me", "assets")) == {
        "refs/hero (red)+é 1.png",
        "refs/a%20b.png",
        "refs/weirdname.png",
        "refs/q%20%281%29.png",
    }


async def test_a_part_without_a_filename_gets_a_uuid(api: Api) -> None:
    """A files[] part whose Content-Disposition has no plain filename (filename* does not count) is
    stored under a random UUID name."""
    await create_repo(api)
    body = (
        b"--XyZ\r\nContent-Disposition: form-data; name=\"files[]\"; filename*=UTF-8''x%20y.png\r\n\r\nabc\r\n"
        b'--XyZ\r\nContent-Disposition: form-data; name="name"\r\n\r\nMe\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="email"\r\n\r\nme@x\r\n--XyZ--\r\n'
    )
    headers = {"Content-Type": "multipart/form-data; boundary=XyZ"}
    status, _, _ = await raw_request(
        api, "PUT", "/api/repos/me/assets/file/main/d", data=body, headers=headers
    )
    assert status == 200
    (path,) = api.emu.repo_files("me", "assets")
    assert re.fullmatch(r"d/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", path)


async def test_form_errors_are_plain_text(api: Api) -> None:
    """What actix's MultipartForm extractor refuses is answered as plain text before the handler: a
    body that is not multipart/form-data (415), a part without a form-data disposition (400), a text
    field sent as something other than text/plain (400)."""
    await create_repo(api)
    url = "/api/repos/me/assets/file/main/a.png"
    status, kind, text = await raw_request(api, "PUT", url, json={"file": "x"})
    assert (status, kind) == (415, "text/plain")
    assert text == 'Parsed Content-Type did not have "multipart" top-level media type'
    headers = {"Content-Type": "multipart/form-data; boundary=XyZ"}
    body = b"--XyZ\r\nContent-Type: text/plain\r\n\r\nabc\r\n--XyZ--\r\n"
    status, _, text = await raw_request(api, "PUT", url, data=body, headers=headers)
    assert (status, text) == (
        400,
        'Content-Disposition header was not found when parsing a "form-data" field',
    )
    body = b'--XyZ\r\nContent-Disposition: form-data; name="name"\r\nContent-Type: application/json\r\n\r\n"x"\r\n--XyZ--\r\n'
    status, _, text = await raw_request(api, "PUT", url, data=body, headers=headers)
    assert (status, text) == (400, "An error occurred processing field: name")
