"""Repositories and branches: create (POST), read (GET), list, read and create branches."""

from __future__ import annotations

import aiohttp

from .repo_support import create_repo, png, put_ok
from .support import Api


async def test_create_repo_then_conflict(api: Api) -> None:
    """POST /api/repos creates a repository (200 resource_found, as oxen-server says it) and answers 409
    "Repo already exists." when it already exists."""
    status, payload = await create_repo(api)
    assert status == 200
    assert (payload["status"], payload["status_message"]) == ("success", "resource_found")
    assert (payload["repository"]["name"], payload["repository"]["latest_commit"]) == ("assets", None)
    status, payload = await create_repo(api)
    assert (status, payload["status"], payload["status_message"]) == (409, "error", "Repo already exists.")


async def test_repo_info_empty_then_filled(api: Api) -> None:
    """GET /api/repos/{ns}/{repo}: a new repository is empty with no branch; after an upload it has main."""
    await create_repo(api)
    status, payload = await api.request("GET", "/api/repos/me/assets")
    assert (status, payload["status_message"]) == (200, "resource_found")
    repository = payload["repository"]
    assert (repository["namespace"], repository["name"]) == ("me", "assets")
    assert (repository["is_empty"], repository["branch_count"], repository["size"]) == (True, 0, 0)
    await put_ok(api, "main/a.png", [png("a.png", b"12345")])
    repository = (await api.request("GET", "/api/repos/me/assets"))[1]["repository"]
    assert (repository["is_empty"], repository["branch_count"], repository["size"]) == (False, 1, 5)
    assert repository["data_types"] == [{"data_type": "image", "count": 1}]


async def test_missing_repo_is_404(api: Api) -> None:
    """GET of a repository that does not exist (and of its branches) is 404 with status_description."""
    for path in ("/api/repos/me/nope", "/api/repos/me/nope/branches/main", "/api/repos/me/nope/branches"):
        status, payload = await api.request("GET", path)
        assert (status, payload["status_description"]) == (404, "Repository 'me/nope' not found"), path


async def test_branch_with_its_head_commit(api: Api) -> None:
    """GET .../branches/{branch} is exactly {name, commit_id}: the head commit, which moves with each upload."""
    await create_repo(api)
    await put_ok(api, "main/a.png", [png("a.png")])
    second = await put_ok(api, "main/b.png", [png("b.png")], message="second")
    status, payload = await api.request("GET", "/api/repos/me/assets/branches/main")
    assert (status, payload["status_message"], payload["branch"]) == (
        200,
        "resource_found",
        {"name": "main", "commit_id": second},
    )


async def test_missing_branch_is_404(api: Api) -> None:
    """A branch the repository does not have is 404 'Branch does not exist'."""
    await create_repo(api)
    await put_ok(api, "main/a.png", [png("a.png")])
    status, payload = await api.request("GET", "/api/repos/me/assets/branches/dev")
    assert (status, payload["error"]["title"]) == (404, "Branch does not exist")
    assert payload["error"]["detail"] == "Could not find branch: Branch 'dev' not found"


async def test_create_branch_from_a_branch(api: Api) -> None:
    """POST .../branches {new_name, from_name} starts at the source head; later uploads stay apart."""
    await create_repo(api)
    head = await put_ok(api, "main/a.png", [png("a.png", b"main")])
    body = {"new_name": "dev", "from_name": "main"}
    status, payload = await api.request("POST", "/api/repos/me/assets/branches", json=body)
    assert (status, payload["status_message"]) == (200, "resource_created")
    assert (payload["branch"]["name"], payload["branch"]["commit_id"]) == ("dev", head)
    await put_ok(api, "dev/a.png", [png("a.png", b"dev")])
    assert api.emu.repo_file("me", "assets", "a.png").data == b"main"
    assert api.emu.repo_file("me", "assets", "a.png", revision="dev").data == b"dev"


async def test_create_branch_from_a_commit(api: Api) -> None:
    """POST .../branches {new_name, commit_id} points the new branch at that commit."""
    await create_repo(api)
    first = await put_ok(api, "main/a.png", [png("a.png", b"one")])
    await put_ok(api, "main/a.png", [png("a.png", b"two")])
    body = {"new_name": "old", "commit_id": first}
    status, payload = await api.request("POST", "/api/repos/me/assets/branches", json=body)
    assert (status, payload["branch"]["commit_id"]) == (200, first)
    assert api.emu.repo_file("me", "assets", "a.png", revision="old").data == b"one"


async def test_creating_an_existing_branch_returns_it(api: Api) -> None:
    """An existing new_name is answered 200 resource_found with the branch unchanged (nothing is created)."""
    await create_repo(api)
    head = await put_ok(api, "main/a.png", [png("a.png")])
    body = {"new_name": "main", "from_name": "main"}
    status, payload = await api.request("POST", "/api/repos/me/assets/branches", json=body)
    assert (status, payload["status_message"], payload["branch"]["commit_id"]) == (
        200,
        "resource_found",
        head,
    )


async def test_create_branch_refusals(api: Api) -> None:
    """A body without new_name and a source is 400 'Invalid request body'; an unknown source branch is
    404 resource_not_found; an unknown commit, an invalid name, or an existing name made from a commit
    fall into oxen-server's catch-all 500."""
    await create_repo(api)
    await put_ok(api, "main/a.png", [png("a.png")])
    url = "/api/repos/me/assets/branches"
    status, payload = await api.request("POST", url, json={"new_name": "dev"})
    assert (status, payload["status_message"]) == (400, "Invalid request body")
    status, payload = await api.request("POST", url, json={"new_name": "dev", "from_name": "nope"})
    assert (status, payload["status"], payload["status_message"]) == (404, "error", "resource_not_found")
    head = api.emu.repo_commits("me", "assets")[-1].id
    for body, title in (
        ({"new_name": "dev", "commit_id": "f" * 32}, f"Could not find commit: {'f' * 32}"),
        ({"new_name": "bad name", "from_name": "main"}, "'bad name' is not a valid branch name."),
        ({"new_name": "main", "commit_id": head}, "Branch already exists: main"),
    ):
        status, payload = await api.request("POST", url, json=body)
        assert (status, payload["error"]["title"]) == (500, title), body
    branches = (await api.request("GET", url))[1]["branches"]
    assert [branch["name"] for branch in branches] == ["main"]


async def test_branch_names_with_slashes(api: Api) -> None:
    """A branch may hold '/': created, read back, listed; its history and files resolve through the
    longest leading run of segments that is a branch. %2F stays literal in the branch route."""
    await create_repo(api)
    await put_ok(api, "main/a.png", [png("a.png", b"main")])
    body = {"new_name": "review/client-a", "from_name": "main"}
    status, payload = await api.request("POST", "/api/repos/me/assets/branches", json=body)
    assert (status, payload["branch"]["name"]) == (200, "review/client-a")
    on_branch = await put_ok(api, "review/client-a/dir/b.png", [png("b.png", b"review")])
    status, payload = await api.request("GET", "/api/repos/me/assets/branches/review/client-a")
    assert (status, payload["branch"]) == (200, {"name": "review/client-a", "commit_id": on_branch})
    assert (await api.request("GET", "/api/repos/me/assets/branches/review%2Fclient-a"))[0] == 404
    history = (await api.request("GET", "/api/repos/me/assets/commits/history/review/client-a/dir/b.png"))[1]
    assert [c["id"] for c in history["commits"]] == [on_branch]
    async with api.session.get(api.url("/api/repos/me/assets/file/review/client-a/dir/b.png")) as resp:
        assert (resp.status, await resp.read()) == (200, b"review")
    assert "dir/b.png" not in api.emu.repo_files("me", "assets")
    assert api.emu.repo_file("me", "assets", "dir/b.png", revision="review/client-a").data == b"review"


async def test_a_longer_branch_wins_over_a_shorter_one(api: Api) -> None:
    """With branches 'review' and 'review/client-a', 'review/client-a/x' is x on the longer one."""
    await create_repo(api)
    await put_ok(api, "main/x", [("file", "x", b"main", "text/plain")])
    for name in ("review", "review/client-a"):
        await api.request(
            "POST", "/api/repos/me/assets/branches", json={"new_name": name, "from_name": "main"}
        )
    await put_ok(api, "review/client-a/x", [("file", "x", b"longer", "text/plain")])
    assert api.emu.repo_file("me", "assets", "x", revision="review").data == b"main"
    assert api.emu.repo_file("me", "assets", "x", revision="review/client-a").data == b"longer"


async def test_list_branches(api: Api) -> None:
    """GET .../branches lists every branch with its head commit, by name."""
    await create_repo(api)
    head = await put_ok(api, "main/a.png", [png("a.png")])
    await api.request("POST", "/api/repos/me/assets/branches", json={"new_name": "dev", "from_name": "main"})
    status, payload = await api.request("GET", "/api/repos/me/assets/branches")
    assert status == 200
    assert [(b["name"], b["commit_id"]) for b in payload["branches"]] == [("dev", head), ("main", head)]


async def test_reads_need_no_key_but_a_wrong_key_is_401(api: Api, session: aiohttp.ClientSession) -> None:
    """Repository reads answer without a key (public repositories); a wrong key is still 401."""
    await create_repo(api)
    async with session.get(api.url("/api/repos/me/assets")) as resp:
        assert resp.status == 200
    async with session.get(api.url("/api/repos/me/assets"), headers={"Authorization": "Bearer bad"}) as resp:
        assert resp.status == 401
    async with session.post(api.url("/api/repos/me/assets/branches"), json={}) as resp:
        assert resp.status == 401
