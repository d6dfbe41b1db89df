"""Commit history (paginated, per revision or path), single commits, and the Python hooks over them."""

from __future__ import annotations

import hashlib

import pytest

from .repo_support import create_repo, png, put_ok
from .support import Api

HISTORY = "/api/repos/me/assets/commits/history/"


async def three_commits(api: Api) -> list[str]:
    """a.png, then b.png, then a new a.png, on main; their commit ids, oldest first."""
    await create_repo(api)
    return [
        await put_ok(api, "main/a.png", [png("a.png", b"a1")]),
        await put_ok(api, "main/dir/b.png", [png("b.png", b"b1")]),
        await put_ok(api, "main/a.png", [png("a.png", b"a2")]),
    ]


async def test_history_of_a_branch_newest_first(api: Api) -> None:
    """commits/history/{branch} lists the branch's commits newest first, each pointing at the previous."""
    ids = await three_commits(api)
    status, payload = await api.request("GET", HISTORY + "main")
    assert (status, payload["status_message"]) == (200, "resource_found")
    assert [c["id"] for c in payload["commits"]] == ids[::-1]
    assert [c["parent_ids"] for c in payload["commits"]] == [[ids[1]], [ids[0]], []]
    assert (payload["total_entries"], payload["total_pages"], payload["page_number"]) == (3, 1, 1)


async def test_history_of_a_path(api: Api) -> None:
    """commits/history/{branch}/{path} keeps the commits that changed that file or something under that dir."""
    ids = await three_commits(api)
    assert [c["id"] for c in (await api.request("GET", HISTORY + "main/a.png"))[1]["commits"]] == [
        ids[2],
        ids[0],
    ]
    assert [c["id"] for c in (await api.request("GET", HISTORY + "main/dir"))[1]["commits"]] == [ids[1]]
    status, payload = await api.request("GET", HISTORY + "main/never.png")
    assert (status, payload["commits"], payload["total_pages"]) == (200, [], 0)


async def test_history_from_a_commit_id(api: Api) -> None:
    """A commit id as revision lists that commit and its ancestors only."""
    ids = await three_commits(api)
    payload = (await api.request("GET", HISTORY + ids[1]))[1]
    assert [c["id"] for c in payload["commits"]] == [ids[1], ids[0]]


async def test_history_pages(api: Api) -> None:
    """page and page_size cut the history; the totals describe all of it."""
    ids = await three_commits(api)
    payload = (await api.request("GET", HISTORY + "main", params={"page": 2, "page_size": 2}))[1]
    assert [c["id"] for c in payload["commits"]] == [ids[0]]
    assert (payload["page_number"], payload["page_size"], payload["total_pages"]) == (2, 2, 2)
    assert payload["total_entries"] == 3


@pytest.mark.parametrize("params", [{"page": "0"}, {"page_size": "x"}, {"page_size": "-1"}])
async def test_bad_pages_are_400(api: Api, params: dict[str, str]) -> None:
    """page or page_size that is not an integer >= 1 is 400."""
    await three_commits(api)
    assert (await api.request("GET", HISTORY + "main", params=params))[0] == 400


async def test_history_of_an_empty_repo_and_an_unknown_revision(api: Api) -> None:
    """An empty repository has an empty history; once it has commits, an unknown revision is 404."""
    await create_repo(api)
    status, payload = await api.request("GET", HISTORY + "main")
    assert (status, payload["commits"], payload["total_entries"]) == (200, [], 0)
    await put_ok(api, "main/a.png", [png("a.png")])
    assert (await api.request("GET", HISTORY + "dev"))[0] == 404


async def test_get_one_commit(api: Api) -> None:
    """GET .../commits/{id} answers the commit; an unknown id is 404."""
    ids = await three_commits(api)
    status, payload = await api.request("GET", f"/api/repos/me/assets/commits/{ids[1]}")
    assert (status, payload["commit"]["id"], payload["commit"]["parent_ids"]) == (200, ids[1], [ids[0]])
    assert (await api.request("GET", "/api/repos/me/assets/commits/" + "0" * 32))[0] == 404


async def test_hooks_read_files_and_commits(api: Api) -> None:
    """repo_files / repo_file give bytes and sha256 per revision; repo_commits gives added/modified paths."""
    ids = await three_commits(api)
    file = api.emu.repo_file("me", "assets", "a.png")
    assert (file.data, file.sha256) == (b"a2", hashlib.sha256(b"a2").hexdigest())
    assert api.emu.repo_file("me", "assets", "a.png", revision=ids[0]).data == b"a1"
    assert set(api.emu.repo_files("me", "assets", revision=ids[1])) == {"a.png", "dir/b.png"}
    commits = api.emu.repo_commits("me", "assets")
    assert [c.id for c in commits] == ids
    assert [(c.added, c.modified) for c in commits] == [
        (("a.png",), ()),
        (("dir/b.png",), ()),
        ((), ("a.png",)),
    ]
    assert [c.id for c in api.emu.repo_commits("me", "assets", path="dir")] == [ids[1]]


async def test_an_identical_upload_still_commits_but_changes_nothing(api: Api) -> None:
    """Re-sending the same bytes makes a commit that lists no added or modified path, but an unchanged one."""
    await create_repo(api)
    await put_ok(api, "main/a.png", [png("a.png")])
    again = await put_ok(api, "main/a.png", [png("a.png")])
    last = api.emu.repo_commits("me", "assets")[-1]
    assert (last.id, last.added, last.modified) == (again, (), ())
    assert (last.unchanged, last.sent) == (("a.png",), ("a.png",))


async def test_hooks_raise_key_error_for_what_is_missing(api: Api) -> None:
    """The hooks raise KeyError for an unknown repository, revision or path; an empty repo has no commits."""
    await create_repo(api)
    assert api.emu.repo_commits("me", "assets") == []
    with pytest.raises(KeyError):
        api.emu.repo_files("me", "nope")
    with pytest.raises(KeyError):
        api.emu.repo_files("me", "assets")  # empty: main does not exist yet
    await put_ok(api, "main/a.png", [png("a.png")])
    with pytest.raises(KeyError):
        api.emu.repo_file("me", "assets", "b.png")
    with pytest.raises(KeyError):
        api.emu.repo_commits("me", "assets", revision="dev")
