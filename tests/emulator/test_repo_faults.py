"""Repositories under faults: read-only targets, cut upload answers, and route-named 5xx/429/slow faults."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
import xxhash

from .repo_support import REPO, commit, create_repo, png, put, put_ok, seeded_repo, stage, workspace
from .support import Api

UPLOAD = "PUT /api/repos/{namespace}/{repo}/file/{branch}/{path}"


async def test_read_only_repo_refuses_writes_with_403(api: Api) -> None:
    """A read-only repository can be read, but uploads and branch creation (even of main) get 403."""
    api.emu.create_repo("team", "deliveries", read_only=True)
    assert (await api.request("GET", "/api/repos/team/deliveries"))[0] == 200
    status, payload = await put(api, "main/a.png", [png("a.png")], repo="team/deliveries")
    assert (status, payload["status_message"]) == (403, "forbidden")
    body = {"new_name": "main", "from_name": "main"}
    assert (await api.request("POST", "/api/repos/team/deliveries/branches", json=body))[0] == 403
    assert api.emu.counters.commits == 0
    assert api.emu.repo_commits("team", "deliveries") == []


async def test_read_only_can_be_switched_at_runtime(api: Api) -> None:
    """set_repo_read_only turns writes off and on again for an existing repository."""
    await create_repo(api)
    await put_ok(api, "main/a.png", [png("a.png")])
    api.emu.set_repo_read_only("me", "assets")
    assert (await put(api, "main/b.png", [png("b.png")]))[0] == 403
    api.emu.set_repo_read_only("me", "assets", read_only=False)
    await put_ok(api, "main/b.png", [png("b.png")])
    with pytest.raises(KeyError):
        api.emu.set_repo_read_only("me", "nope")


async def test_upload_cut_commits_but_never_answers(api: Api) -> None:
    """upload_cut_rate=1: the PUT is committed and counted, then closed with no answer."""
    # aiohttp resends a PUT once by itself when a reused connection drops before the answer (PUT is
    # idempotent to it). That resend finds the bytes on the branch already: 422 no_changes, which
    # is not a write that did work, so it is answered.
    await create_repo(api)
    events: list[tuple[str, Any]] = []
    api.emu.counters.listeners.append(lambda event, detail: events.append((event, detail)))
    api.emu.set_faults(upload_cut_rate=1.0)
    try:
        status, payload = await put(api, "main/a.png", [png("a.png")])
    except aiohttp.ServerDisconnectedError:
        status, payload = 0, None
    assert status in (0, 422), payload
    (commit,) = api.emu.repo_commits("me", "assets")
    assert (commit.added, api.emu.counters.commits, api.emu.counters.faults["upload_cut"]) == (
        ("a.png",),
        1,
        1,
    )
    assert [e for e in events if e[0] != "request"] == [
        ("committed", commit.id),
        ("upload_answered", commit.id),
    ]


async def test_an_error_after_the_commit_answers_5xx_for_a_commit_that_was_made(api: Api) -> None:
    """upload_error_after_commit_rate=1: the commit is made and counted, the answer is the 5xx."""
    await create_repo(api)
    events: list[str] = []
    api.emu.counters.listeners.append(lambda event, detail: events.append(event))
    api.emu.set_faults(upload_error_after_commit_rate=1.0, server_error_status=502)
    status, payload = await put(api, "main/a.png", [png("a.png")])
    assert (status, payload["status"]) == (502, "error")
    assert [c.added for c in api.emu.repo_commits("me", "assets")] == [("a.png",)]
    assert api.emu.counters.faults["upload_error_after_commit"] == 1 == api.emu.counters.commits
    assert [e for e in events if e != "request"] == ["committed", "upload_answered"]


async def test_answered_upload_emits_committed_then_answered(api: Api) -> None:
    """A normal upload emits 'committed' and then 'upload_answered' with its commit id."""
    await create_repo(api)
    events: list[str] = []
    api.emu.counters.listeners.append(lambda event, detail: events.append(event))
    await put_ok(api, "main/a.png", [png("a.png")])
    assert [e for e in events if e != "request"] == ["committed", "upload_answered"]


async def test_server_errors_reach_uploads_only_when_named(api: Api) -> None:
    """server_error_rate=1 with no routes spares repositories; naming the upload route makes it 503, uncommitted."""
    await create_repo(api)
    api.emu.set_faults(server_error_rate=1.0)
    await put_ok(api, "main/a.png", [png("a.png")])
    assert (await api.request("GET", "/api/ai/queue"))[0] == 503
    api.emu.set_faults(server_error_routes=(UPLOAD,))
    assert (await put(api, "main/b.png", [png("b.png")]))[0] == 503
    assert (await api.request("GET", "/api/ai/queue"))[0] == 200
    assert api.emu.counters.commits == 1


async def test_rate_limits_reach_a_named_repository_route(api: Api) -> None:
    """rate_limit_routes naming the branch route makes it 429 with Retry-After."""
    api.emu.set_faults(
        rate_limit_rate=1.0, rate_limit_routes=("/api/repos/{namespace}/{repo}/branches/{branch}",)
    )
    async with api.session.get(api.url("/api/repos/elau/assets/branches/main")) as resp:
        assert (resp.status, resp.headers["Retry-After"]) == (429, "2")
    assert (await api.request("GET", "/api/repos/elau/assets"))[0] == 200


async def test_slow_response_routes_delay_uploads_only(api: Api) -> None:
    """slow_response_routes naming the upload route delays uploads, and nothing else."""
    await create_repo(api)
    api.emu.set_faults(slow_response_rate=1.0, slow_response_seconds=0.2, slow_response_routes=(UPLOAD,))
    loop = asyncio.get_running_loop()
    began = loop.time()
    await put_ok(api, "main/a.png", [png("a.png")])
    assert loop.time() - began >= 0.2
    assert (await api.request("GET", "/api/ai/queue"))[0] == 200
    assert api.emu.counters.faults["slow_response"] == 1


async def test_upload_carried_out_after_the_client_gave_up(api: Api) -> None:
    """A client that times out during a slow upload finds the commit made all the same."""
    await create_repo(api)
    api.emu.set_faults(slow_response_rate=1.0, slow_response_seconds=0.3, slow_response_routes=(UPLOAD,))
    committed = asyncio.Event()
    api.emu.counters.listeners.append(lambda event, _: committed.set() if event == "committed" else None)
    with pytest.raises(asyncio.TimeoutError):
        await put(api, "main/a.png", [png("a.png")], client_timeout=aiohttp.ClientTimeout(total=0.05))
    async with asyncio.timeout(5):
        await committed.wait()
    assert api.emu.repo_file("me", "assets", "a.png").data.startswith(b"\x89PNG")


WS_COMMIT = "POST /api/repos/{namespace}/{repo}/workspaces/{workspace_id}/merge/{branch}"
WS_FILES = "POST /api/repos/{namespace}/{repo}/workspaces/{workspace_id}/files/{dir}"


async def test_a_workspace_commit_answered_5xx_was_made(api: Api) -> None:
    """upload_error_after_commit_rate on a workspace commit: the commit is made, the unnamed workspace
    deleted, then the answer is the 5xx."""
    await seeded_repo(api)
    await workspace(api)
    await stage(api, "ws-1", "", [png("a.png")])
    events: list[str] = []
    api.emu.counters.listeners.append(lambda event, detail: events.append(event))
    api.emu.set_faults(upload_error_after_commit_rate=1.0, server_error_status=504)
    status, payload = await commit(api, "ws-1")
    assert (status, payload["status"]) == (504, "error")
    assert api.emu.repo_commits("me", "assets")[-1].added == ("a.png",)
    assert api.emu.workspaces("me", "assets") == []
    assert [e for e in events if e != "request"] == ["committed", "workspace_deleted", "upload_answered"]


async def test_a_cut_workspace_commit_was_made(api: Api) -> None:
    """upload_cut_rate on a workspace commit: the commit is made (a POST: not resent), the workspace
    deleted, and the connection closed unanswered."""
    await seeded_repo(api)
    await workspace(api)
    await stage(api, "ws-1", "", [png("a.png")])
    events: list[tuple[str, Any]] = []
    api.emu.counters.listeners.append(lambda event, detail: events.append((event, detail)))
    api.emu.set_faults(upload_cut_rate=1.0, upload_fault_routes=(WS_COMMIT,))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await commit(api, "ws-1")
    made = api.emu.repo_commits("me", "assets")[-1]
    assert (made.added, api.emu.workspaces("me", "assets")) == (("a.png",), [])
    assert [e for e in events if e[0] != "request"] == [
        ("committed", made.id),
        ("workspace_deleted", "ws-1"),
        ("upload_answered", made.id),
    ]


@pytest.mark.parametrize(
    ("route", "expected_status"),
    [
        ((), 0),
        ((WS_FILES,), 0),
        ((WS_COMMIT,), 200),
        (("/api/repos/{namespace}/{repo}/workspaces/{workspace_id}/files/{dir}",), 0),
    ],
)
async def test_staging_cut_after_the_work(api: Api, route: tuple[str, ...], expected_status: int) -> None:
    """upload_cut_rate on the files route stages, then cuts the connection (a POST, not resent); with
    upload_fault_routes naming only another route, staging is answered."""
    await seeded_repo(api)
    await workspace(api)
    staged = asyncio.Event()
    api.emu.counters.listeners.append(lambda event, _: staged.set() if event == "staged" else None)
    api.emu.set_faults(upload_cut_rate=1.0, upload_fault_routes=route)
    try:
        status = (await stage(api, "ws-1", "d", [png("a.png")]))[0]
    except aiohttp.ServerDisconnectedError:
        status = 0
    assert status == expected_status
    async with asyncio.timeout(5):
        await staged.wait()
    assert api.emu.workspaces("me", "assets")[0].staged == ("d/a.png",)
    assert api.emu.counters.faults["upload_cut"] == (1 if expected_status == 0 else 0)


async def test_every_write_route_does_its_work_before_the_fault(api: Api) -> None:
    """With upload_error_after_commit_rate=1 every repository write answers 503, and every one did its
    work: workspaces created, files staged, chunks stored, versions completed, workspaces deleted."""
    await seeded_repo(api)
    api.emu.set_faults(upload_error_after_commit_rate=1.0)
    body = json.dumps({"workspace_id": "ws-1", "branch_name": "main"})
    assert (await api.request("PUT", f"{REPO}/workspaces", data=body))[0] == 503
    assert (await api.request("POST", f"{REPO}/workspaces", data=body))[
        0
    ] == 503  # found: still a write route
    assert (await stage(api, "ws-1", "", [png("a.png")]))[0] == 503
    version = format(xxhash.xxh3_128_intdigest(b"abc"), "x")
    assert (await api.request("PUT", f"{REPO}/versions/{version}/chunks?offset=0", data=b"abc"))[0] == 503
    complete = {"files": [{"hash": version, "file_name": "v.bin", "num_chunks": 1}], "workspace_id": "ws-1"}
    assert (await api.request("POST", f"{REPO}/versions/{version}/complete", json=complete))[0] == 503
    assert api.emu.workspaces("me", "assets")[0].staged == ("a.png", "v.bin")
    assert (await api.request("DELETE", f"{REPO}/workspaces/ws-1"))[0] == 503
    assert api.emu.workspaces("me", "assets") == []
    assert api.emu.counters.faults["upload_error_after_commit"] == 6
    assert (await api.request("GET", f"{REPO}/workspaces"))[0] == 200  # reads are not writes


async def test_refused_writes_are_not_faulted(api: Api) -> None:
    """A write that did nothing (404, 422) is answered as it is: the write faults hit only done work."""
    await seeded_repo(api)
    await workspace(api)
    api.emu.set_faults(upload_cut_rate=1.0)
    assert (await commit(api, "ws-1"))[0] == 422
    assert (await commit(api, "nope"))[0] == 404
    assert api.emu.counters.faults["upload_cut"] == 0


async def test_5xx_and_429_reach_workspace_routes_only_when_named(api: Api) -> None:
    """The opt-in API faults: a named workspace route gets the 503 before any work; others are spared."""
    await seeded_repo(api)
    await workspace(api)
    api.emu.set_faults(server_error_rate=1.0, server_error_routes=(WS_FILES,))
    assert (await stage(api, "ws-1", "", [png("a.png")]))[0] == 503
    assert api.emu.workspaces("me", "assets")[0].staged == ()
    assert (await commit(api, "ws-1"))[0] == 422


async def test_a_slow_staging_is_carried_out_after_the_client_gave_up(api: Api) -> None:
    """slow_response on the files route stalls once the body is read: a client that times out meanwhile
    finds the files staged all the same."""
    await seeded_repo(api)
    await workspace(api)
    api.emu.set_faults(slow_response_rate=1.0, slow_response_seconds=0.3, slow_response_routes=(WS_FILES,))
    staged = asyncio.Event()
    api.emu.counters.listeners.append(lambda event, _: staged.set() if event == "staged" else None)
    with pytest.raises(asyncio.TimeoutError):
        await stage(api, "ws-1", "", [png("a.png")], timeout=aiohttp.ClientTimeout(total=0.1))
    async with asyncio.timeout(5):
        await staged.wait()
    assert api.emu.workspaces("me", "assets")[0].staged == ("a.png",)
