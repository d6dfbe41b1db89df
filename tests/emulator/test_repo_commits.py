"""Commit history (paginated, per revision or path), single commits, and the Python hooks over them."""

from __future__ import annotations

import hashlib

import pytest

from .repo_support import create_repo, png, put, put_ok, raw_request
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


async def test_history_of_a_path_the_revision_lacks_is_404(api: Api) -> None:
    """A path absent at the revision is 404 'Path not in revision' (also one that exists elsewhere)."""
    ids = await three_commits(api)
    status, payload = await api.request("GET", HISTORY + "main/never.png")
    assert (status, payload["error"]["title"]) == (404, "Path not in revision")
    assert payload["error"]["detail"] == f"never.png does not exist in {ids[2]}."
    assert (await api.request("GET", HISTORY + f"{ids[0]}/dir/b.png"))[0] == 404


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


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"page_size": "x"}, "invalid digit found in string"),
        ({"page_size": "-1"}, "invalid digit found in string"),
        ({"page": ""}, "cannot parse integer from empty string"),
        ({"page": str(2**64)}, "number too large to fit in target type"),
    ],
)
async def test_bad_pages_are_plain_400(api: Api, params: dict[str, str], message: str) -> None:
    """page or page_size that is not an unsigned integer is refused by actix's Query extractor: plain
    text 400, before the repository is even looked up."""
    await three_commits(api)
    for repo in ("assets", "nope"):
        status, kind, text = await raw_request(
            api, "GET", f"/api/repos/me/{repo}/commits/history/main", params=params
        )
        assert (status, kind, text) == (400, "text/plain", f"Query deserialize error: {message}")


async def test_page_zero_reads_as_page_one_and_page_size_zero_is_empty(api: Api) -> None:
    """page=0 serves page 1 but reports 0; page_size=0 lists nothing and counts no page (liboxen)."""
    ids = await three_commits(api)
    payload = (await api.request("GET", HISTORY + "main", params={"page": "0", "page_size": "2"}))[1]
    assert ([c["id"] for c in payload["commits"]], payload["page_number"]) == (ids[:0:-1], 0)
    payload = (await api.request("GET", HISTORY + "main", params={"page_size": "0"}))[1]
    assert (payload["commits"], payload["total_pages"], payload["total_entries"]) == ([], 0, 3)


async def test_history_of_an_empty_repo_and_an_unknown_revision(api: Api) -> None:
    """An empty repository has an empty history, of one page, whatever the resource; once it has
    commits, an unknown revision is 404 'Path does not exist'."""
    await create_repo(api)
    for resource in ("main", "anything/at/all.png"):
        status, payload = await api.request("GET", HISTORY + resource, params={"page_size": "7"})
        assert (status, payload["commits"], payload["total_entries"]) == (200, [], 0)
        assert (payload["total_pages"], payload["page_size"], payload["page_number"]) == (1, 7, 1)
    await put_ok(api, "main/a.png", [png("a.png")])
    status, payload = await api.request("GET", HISTORY + "dev")
    assert (status, payload["error"]["title"]) == (404, "Path does not exist")


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


async def test_an_identical_upload_is_422_no_changes(api: Api) -> None:
    """Re-sending the same bytes makes no commit: 422 with the no_changes envelope (errors.rs NoChanges)."""
    await create_repo(api)
    await put_ok(api, "main/a.png", [png("a.png")])
    status, payload = await put(api, "main/a.png", [png("a.png")])
    assert status == 422
    assert payload["error"]["type"] == "no_changes"
    assert (payload["error"]["title"], payload["status"], payload["status_message"]) == (
        "No changes to commit",
        "error",
        "bad_request",
    )
    assert len(api.emu.repo_commits("me", "assets")) == 1 == api.emu.counters.commits


async def test_a_mixed_upload_commits_only_what_changed(api: Api) -> None:
    """Files whose bytes equal the branch's are left out of the commit (listed as unchanged, and in
    `sent`); the others make it; each part counts in files_received."""
    await create_repo(api)
    await put_ok(api, "main/d", [png("a.png", b"a", "files[]"), png("b.png", b"b", "files[]")])
    again = await put_ok(api, "main/d", [png("a.png", b"a", "files[]"), png("b.png", b"B", "files[]")])
    last = api.emu.repo_commits("me", "assets")[-1]
    assert (last.id, last.added, last.modified, last.unchanged) == (again, (), ("d/b.png",), ("d/a.png",))
    assert sorted(last.sent) == ["d/a.png", "d/b.png"]
    received = api.emu.counters.files_received
    assert received[("d/a.png", hashlib.sha256(b"a").hexdigest())] == 2
    assert received[("d/b.png", hashlib.sha256(b"B").hexdigest())] == 1
    assert (api.emu.counters.uploads, api.emu.counters.commits) == (4, 2)


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
