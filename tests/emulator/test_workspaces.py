"""Workspaces: get-or-create, find, list, delete and clear, and committing one onto a branch (merge, the
deprecated commit), with oxen-server's answers and refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .repo_support import PNG, REPO, commit, create_repo, png, put_ok, seeded_repo, stage, workspace
from .support import Api


async def test_create_then_get_again(api: Api) -> None:
    """PUT /workspaces creates a workspace on the branch's head (resource_created); the same call again
    finds it (resource_found). Any Content-Type is read as the body."""
    head = await seeded_repo(api)
    body = json.dumps({"workspace_id": "ws-1", "branch_name": "main"})
    status, payload = await api.request(
        "PUT", f"{REPO}/workspaces", data=body, headers={"Content-Type": "text/x"}
    )
    assert (status, payload["status_message"], payload["oxen_version"]) == (200, "resource_created", "0.54.0")
    created = payload["workspace"]
    assert (created["id"], created["name"], created["commit"]["id"]) == ("ws-1", None, head)
    assert created["created_at"].endswith("Z")
    status, payload = await api.request("POST", f"{REPO}/workspaces", data=body)
    assert (status, payload["status_message"], payload["workspace"]) == (200, "resource_found", created)
    (live,) = api.emu.workspaces("me", "assets")
    assert (live.id, live.name, live.branch, live.base_commit, live.staged) == (
        "ws-1",
        None,
        "main",
        head,
        (),
    )
    assert api.emu.counters.workspaces_created == 1


async def test_a_named_workspace_is_found_by_name_and_echoes_the_requests_id(api: Api) -> None:
    """With a name, the name identifies it: asking again with another id finds it and answers with the
    *request's* id (a quirk of get_or_create); GET finds it by name or id."""
    await seeded_repo(api)
    await workspace(api, "ws-1", name="nightly")
    again = await workspace(api, "ws-other", name="nightly")
    assert (again["id"], again["name"]) == ("ws-other", "nightly")
    for identifier in ("nightly", "ws-1"):
        status, payload = await api.request("GET", f"{REPO}/workspaces/{identifier}")
        assert (status, payload["workspace"]["id"], payload["workspace"]["name"]) == (200, "ws-1", "nightly")
    assert [w.id for w in api.emu.workspaces("me", "assets")] == ["ws-1"]


async def test_an_id_taken_under_another_name_is_500(api: Api) -> None:
    """A new name with an id already in use falls into oxen-server's catch-all 500."""
    await seeded_repo(api)
    await workspace(api, "ws-1", name="first")
    body = json.dumps({"workspace_id": "ws-1", "branch_name": "main", "name": "second"})
    status, payload = await api.request("PUT", f"{REPO}/workspaces", data=body)
    assert (status, payload["status_message"]) == (500, "internal_server_error")
    assert payload["error"]["title"] == "Workspace ws-1 already exists"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"branch_name": "main"}, "missing field `workspace_id`"),
        ({"workspace_id": "w"}, "missing field `branch_name`"),
        ({"workspace_id": 5, "branch_name": "main"}, "invalid type: integer `5`, expected a string"),
        (
            {"workspace_id": "w", "branch_name": "dev"},
            "Branch not found: dev. For non-empty repositories, create the branch first.",
        ),
    ],
)
async def test_create_refusals_are_400(api: Api, body: dict[str, Any], message: str) -> None:
    """A body that is not a NewWorkspace, or a branch a non-empty repository lacks: 400 StatusMessage
    with the message as status_message."""
    await seeded_repo(api)
    status, payload = await api.request("PUT", f"{REPO}/workspaces", data=json.dumps(body))
    assert (status, payload["status"]) == (400, "error")
    assert payload["status_message"].startswith(message)
    assert api.emu.workspaces("me", "assets") == []


async def test_an_empty_repository_gets_its_initial_commit_first(api: Api) -> None:
    """In an empty repository the workspace's branch is made by liboxen's initial commit: empty, by
    Oxen <oxen@oxen.ai>, 'Initialized Repo 🐂'."""
    await create_repo(api)
    created = await workspace(api, "ws-1", branch="drafts")
    (initial,) = api.emu.repo_commits("me", "assets", revision="drafts")
    assert (initial.message, initial.author, initial.email) == ("Initialized Repo 🐂", "Oxen", "oxen@oxen.ai")
    assert (created["commit"]["id"], api.emu.repo_files("me", "assets", "drafts")) == (initial.id, {})
    assert api.emu.counters.commits == 0  # not a commit a client asked for


async def test_list_find_delete_and_clear(api: Api) -> None:
    """GET /workspaces lists all (status_message resource_created, as the server says it), ?name= by name
    only; DELETE one answers with the id as given; DELETE /workspaces removes every one."""
    await seeded_repo(api)
    await workspace(api, "ws-1")
    await workspace(api, "ws-2", name="named")
    await workspace(api, "ws-3")
    status, payload = await api.request("GET", f"{REPO}/workspaces")
    assert (status, payload["status_message"]) == (200, "resource_created")
    assert [w["id"] for w in payload["workspaces"]] == ["ws-1", "ws-2", "ws-3"]
    assert [
        w["id"] for w in (await api.request("GET", f"{REPO}/workspaces?name=named"))[1]["workspaces"]
    ] == ["ws-2"]
    assert (await api.request("GET", f"{REPO}/workspaces?name=ws-1"))[1]["workspaces"] == []
    status, payload = await api.request("DELETE", f"{REPO}/workspaces/named")
    assert (status, payload["workspace"]["id"], payload["workspace"]["name"]) == (200, "named", "named")
    deleted: list[str] = []
    api.emu.counters.listeners.append(
        lambda event, detail: deleted.append(detail) if event == "workspace_deleted" else None
    )
    status, payload = await api.request("DELETE", f"{REPO}/workspaces")
    assert (status, payload["status_message"]) == (200, "resource_created")
    assert (api.emu.workspaces("me", "assets"), sorted(deleted)) == ([], ["ws-1", "ws-3"])
    assert api.emu.counters.workspaces_deleted == 3


async def test_a_missing_workspace_is_404_with_a_description(api: Api) -> None:
    """GET, DELETE, validate, changes, files and commit of an unknown workspace: 404 StatusMessageDescription."""
    await seeded_repo(api)
    expected = {
        "status": "error",
        "status_message": "resource_not_found",
        "oxen_version": "0.54.0",
        "status_description": "Workspace not found: nope",
    }
    for method, suffix in (
        ("GET", ""),
        ("DELETE", ""),
        ("POST", "/validate"),
        ("GET", "/changes"),
        ("GET", "/merge/main"),
    ):
        status, payload = await api.request(method, f"{REPO}/workspaces/nope{suffix}")
        assert (status, payload) == (404, expected), (method, suffix)
    assert await commit(api, "nope") == (404, expected)
    assert await stage(api, "nope", "", [png("a.png")]) == (404, expected)


async def test_validate_finds_the_workspace(api: Api) -> None:
    """POST .../validate (liboxen announces the upload size) answers resource_found, whatever the body."""
    await seeded_repo(api)
    await workspace(api)
    status, payload = await api.request("POST", f"{REPO}/workspaces/ws-1/validate", json={"size": 123})
    assert (status, payload) == (
        200,
        {"status": "success", "status_message": "resource_found", "oxen_version": "0.54.0"},
    )


async def test_commit_makes_one_commit_and_deletes_an_unnamed_workspace(api: Api) -> None:
    """Files staged by several requests become one commit on the branch head; the unnamed workspace is
    gone after it (404 on a second commit); events and counters follow."""
    head = await seeded_repo(api)
    await workspace(api)
    await stage(api, "ws-1", "out", [png("a.png", b"a")])
    await stage(api, "ws-1", "out", [png("b.png", b"b")])
    events: list[tuple[str, Any]] = []
    api.emu.counters.listeners.append(lambda event, detail: events.append((event, detail)))
    status, payload = await commit(api, "ws-1")
    assert (status, payload["status_message"]) == (200, "resource_created")
    made = payload["commit"]
    assert (made["parent_ids"], made["message"], made["author"]) == ([head], "deliver", "Me")
    last = api.emu.repo_commits("me", "assets")[-1]
    assert (last.id, sorted(last.added), sorted(last.sent)) == (
        made["id"],
        ["out/a.png", "out/b.png"],
        ["out/a.png", "out/b.png"],
    )
    assert set(api.emu.repo_files("me", "assets")) == {"base.txt", "out/a.png", "out/b.png"}
    assert api.emu.workspaces("me", "assets") == []
    kinds = [e for e in events if e[0] != "request"]
    assert kinds == [
        ("committed", made["id"]),
        ("workspace_deleted", "ws-1"),
        ("upload_answered", made["id"]),
    ]
    assert (api.emu.counters.commits, api.emu.counters.uploads) == (2, 3)
    assert (await commit(api, "ws-1"))[0] == 404


async def test_the_deprecated_commit_route_and_a_named_workspace(api: Api) -> None:
    """/commit/{branch} does what /merge/{branch} does. A named workspace survives its commit, moved onto
    the new commit; committing it again (nothing staged) is 422 NoChanges."""
    await seeded_repo(api)
    await workspace(api, "ws-1", name="keeper")
    await stage(api, "keeper", "", [png("a.png")])
    status, payload = await commit(api, "keeper", verb="commit")
    assert status == 200
    (live,) = api.emu.workspaces("me", "assets")
    assert (live.id, live.base_commit, live.staged) == ("ws-1", payload["commit"]["id"], ())
    status, payload = await commit(api, "keeper")
    assert (status, payload) == (
        422,
        {"status": "error", "status_message": "NoChanges", "oxen_version": "0.54.0"},
    )


async def test_nothing_staged_is_422_no_changes(api: Api) -> None:
    """A workspace whose only file equals the base commit's stages nothing: its commit is 422 NoChanges,
    and the workspace stays."""
    await seeded_repo(api)
    await workspace(api)
    status, payload = await stage(api, "ws-1", "", [("file", "base.txt", b"base", "text/plain")])
    assert (status, payload["paths"]) == (200, ["base.txt"])
    status, payload = await commit(api, "ws-1")
    assert (status, payload["status_message"]) == (422, "NoChanges")
    assert [w.id for w in api.emu.workspaces("me", "assets")] == ["ws-1"]
    assert api.emu.counters.commits == 1


async def test_commit_goes_on_the_current_head(api: Api) -> None:
    """The branch moved since the workspace was made, on other paths: the commit's parent is the current
    head, and its tree keeps what the branch gained meanwhile."""
    await seeded_repo(api)
    await workspace(api)
    moved = await put_ok(api, "main/other.txt", [("file", "other.txt", b"other", "text/plain")])
    await stage(api, "ws-1", "", [png("a.png")])
    assert (await api.request("GET", f"{REPO}/workspaces/ws-1/merge/main"))[1]["is_mergeable"] is True
    status, payload = await commit(api, "ws-1")
    assert (status, payload["commit"]["parent_ids"]) == (200, [moved])
    assert set(api.emu.repo_files("me", "assets")) == {"base.txt", "other.txt", "a.png"}


async def test_a_file_changed_on_both_sides_is_409_behind(api: Api) -> None:
    """A staged file that the branch also changed since the base commit: 409 'Workspace is behind', no
    commit; the mergeability check says the same without committing. A path new on the branch and
    staged too is no conflict (the staged bytes win)."""
    base = await seeded_repo(api)
    await workspace(api)
    await stage(api, "ws-1", "", [("file", "base.txt", b"mine", "text/plain")])
    head = await put_ok(api, "main/base.txt", [("file", "base.txt", b"theirs", "text/plain")])
    status, payload = await api.request("GET", f"{REPO}/workspaces/ws-1/merge/main")
    assert (status, payload["is_mergeable"], payload["conflicts"]) == (200, False, [{"path": "base.txt"}])
    assert [c["id"] for c in payload["commits"]] == [head, base]
    status, payload = await commit(api, "ws-1")
    assert status == 409
    assert payload == {
        "error": {
            "type": "conflict",
            "title": "Workspace is behind",
            "detail": f"This workspace 'ws-1' is behind on branch 'main' commit {base} < {head}",
        },
        "status": "error",
        "status_message": "conflict",
    }
    assert api.emu.repo_file("me", "assets", "base.txt").data == b"theirs"
    await workspace(api, "ws-2")
    await stage(api, "ws-2", "", [("file", "new.txt", b"mine", "text/plain")])
    await put_ok(api, "main/new.txt", [("file", "new.txt", b"theirs", "text/plain")])
    assert (await commit(api, "ws-2"))[0] == 200
    assert api.emu.repo_file("me", "assets", "new.txt").data == b"mine"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"message": "m", "author": "a"}, 400, "missing field `email`"),
        ("not json", 400, "Expecting value"),
    ],
)
async def test_commit_body_refusals(api: Api, body: Any, status: int, message: str) -> None:
    """A commit body that is not {message, author, email}: 400, before the workspace is looked up."""
    await seeded_repo(api)
    text = body if isinstance(body, str) else json.dumps(body)
    got, payload = await api.request("POST", f"{REPO}/workspaces/nope/merge/main", data=text)
    assert (got, payload["status_message"].startswith(message)) == (status, True)


async def test_commit_to_a_missing_branch_is_404(api: Api) -> None:
    """An unknown branch: 404 whose status_description is the branch name; mergeability answers liboxen's
    BranchNotFound envelope."""
    await seeded_repo(api)
    await workspace(api)
    await stage(api, "ws-1", "", [png("a.png")])
    status, payload = await commit(api, "ws-1", branch="dev")
    assert (status, payload["status_description"]) == (404, "dev")
    status, payload = await api.request("GET", f"{REPO}/workspaces/ws-1/merge/dev")
    assert (status, payload["error"]["detail"]) == (404, "Could not find branch: Branch 'dev' not found")


async def test_a_workspace_onto_a_branch_with_a_slash(api: Api) -> None:
    """A workspace made on 'review/client-a' commits onto it (the branch route segment holds the slash)."""
    await seeded_repo(api)
    body = {"new_name": "review/client-a", "from_name": "main"}
    await api.request("POST", f"{REPO}/branches", json=body)
    await workspace(api, "ws-r", branch="review/client-a")
    await stage(api, "ws-r", "deliveries", [png("a.png")])
    status, payload = await commit(api, "ws-r", branch="review/client-a")
    assert status == 200
    assert api.emu.repo_commits("me", "assets", revision="review/client-a")[-1].id == payload["commit"]["id"]
    assert "deliveries/a.png" not in api.emu.repo_files("me", "assets")
    async with api.session.get(api.url(f"{REPO}/file/review/client-a/deliveries/a.png")) as resp:
        assert (resp.status, await resp.read()) == (200, PNG)


async def test_workspace_routes_need_the_key(api: Api) -> None:
    """Workspaces are not public: every route needs the Bearer key."""
    await seeded_repo(api)
    async with api.session.get(api.url(f"{REPO}/workspaces")) as resp:
        assert resp.status == 401
