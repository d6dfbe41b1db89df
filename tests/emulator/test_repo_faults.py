"""Repositories under faults: read-only targets, cut upload answers, and route-named 5xx/429/slow faults."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from .repo_support import create_repo, png, put, put_ok
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
    """upload_cut_rate=1: every PUT that arrives is committed and counted, then closed with no answer."""
    # aiohttp resends a PUT once by itself when the connection drops before the answer (PUT is
    # idempotent to it), so this one call may arrive, and commit, twice.
    await create_repo(api)
    events: list[tuple[str, Any]] = []
    api.emu.counters.listeners.append(lambda event, detail: events.append((event, detail)))
    api.emu.set_faults(upload_cut_rate=1.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await put(api, "main/a.png", [png("a.png")])
    api.emu.set_faults(upload_cut_rate=0.0)
    received = api.emu.counters.requests[UPLOAD]
    commits = api.emu.repo_commits("me", "assets")
    assert received >= 1 and len(commits) == received == api.emu.counters.commits
    assert api.emu.counters.faults["upload_cut"] == received
    assert commits[0].added == ("a.png",)
    expected = [(event, c.id) for c in commits for event in ("committed", "upload_answered")]
    assert [e for e in events if e[0] != "request"] == expected


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
