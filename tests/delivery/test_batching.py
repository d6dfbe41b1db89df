"""Batching (pure): commits in arrival order cut at the limits; staging requests per URL-safe directory;
commit messages, tokens and workspace names."""

from __future__ import annotations

from batchgen.sinks.oxen.batching import (
    MIN_UPLOAD_BYTES_PER_S,
    Batch,
    Outgoing,
    commit_message,
    plan_batches,
    plan_stages,
    split_for_url,
    token_of,
    upload_timeout_s,
    workspace_id,
)


def item(path: str, size: int = 10, *, result: bool = False) -> Outgoing:
    return Outgoing(path, f"c/{path}", size, sha256="0" * 64, result=result)


def test_one_commit_takes_files_of_every_directory_in_order_of_arrival() -> None:
    """Files of several directories, under the limits, make one commit in arrival order, in their common
    directory."""
    items = [item("videos/a/1.mp4"), item("videos/b/1.mp4"), item("videos/a/1.json"), item("results.csv")]
    [batch] = plan_batches(items)
    assert [i.local for i in batch.items] == [
        "videos/a/1.mp4",
        "videos/b/1.mp4",
        "videos/a/1.json",
        "results.csv",
    ]
    assert batch.directory == "c"


def test_commits_are_cut_at_the_file_and_byte_limits_and_a_large_file_goes_alone() -> None:
    """Commits are cut at max_files and max_bytes; a file over max_bytes goes alone."""
    items = [item(f"v/{n}.mp4", 40) for n in range(5)] + [item("v/big.mp4", 500), item("v/z.mp4", 1)]
    sizes = [len(b.items) for b in plan_batches(items, max_files=3, max_bytes=100)]
    assert sizes == [2, 2, 1, 1, 1]
    assert [len(b.items) for b in plan_batches(items, max_files=2, max_bytes=10_000)] == [2, 2, 2, 1]


def test_a_later_file_at_the_same_path_replaces_the_earlier() -> None:
    """Two files for the same repository path: only the later one is sent."""
    first, second = item("v/1.json", 1), item("v/1.json", 2)
    [batch] = plan_batches([first, second])
    assert batch.items == (second,)


def test_names_that_need_escaping_travel_in_the_filename_not_the_url() -> None:
    """Only the leading URL-safe directories go in the URL; the rest of the path (accents, spaces, '+')
    travels in the part's filename."""
    assert split_for_url("drops/spring/videos/hero/1.mp4") == ("drops/spring/videos/hero", "1.mp4")
    assert split_for_url("drops/spring/videos/héro (red)+1/a b.mp4") == (
        "drops/spring/videos",
        "héro (red)+1/a b.mp4",
    )
    assert split_for_url("Frühling/x.mp4") == ("", "Frühling/x.mp4")
    assert split_for_url("results.csv") == ("", "results.csv")


def test_small_files_are_staged_a_few_per_request_and_large_ones_alone() -> None:
    """Small files are staged per URL directory, cut at request_bytes; a file over large_bytes is set apart
    for the chunked upload."""
    items = [item(f"videos/a/{n}.mp4", 4) for n in range(5)] + [
        item("videos/b/x.mp4", 3),
        item("videos/a/big.mp4", 11),
    ]
    stages, large = plan_stages(items, request_bytes=8, large_bytes=10)
    assert [(s.directory, [s.filename(i) for i in s.items]) for s in stages] == [
        ("c/videos/a", ["0.mp4", "1.mp4"]),
        ("c/videos/a", ["2.mp4", "3.mp4"]),
        ("c/videos/a", ["4.mp4"]),
        ("c/videos/b", ["x.mp4"]),
    ]
    assert [i.local for i in large] == ["videos/a/big.mp4"]


def test_a_workspace_is_named_after_its_commit_token() -> None:
    """A workspace's id is `batchgen-` and the commit token."""
    assert workspace_id("0123456789ab") == "batchgen-0123456789ab"


def test_a_commit_message_names_the_campaign_counts_and_token() -> None:
    """A commit message names the campaign, results, files, directory, progress and ends with its token, which
    token_of reads back (None for others)."""
    batch = Batch((item("videos/hero/1.mp4", result=True), item("videos/hero/1.json")))
    message = commit_message("spring-campaign", batch, "0123456789ab", (7, 21))
    assert message == (
        "batchgen spring-campaign: 1 result (2 files) in c/videos/hero; 7/21 jobs done [batchgen:0123456789ab]"
    )
    assert token_of(message) == "0123456789ab"
    files = Batch((item("results.csv"), item("results.jsonl")))
    assert commit_message("s", files, "ffffffffffff").startswith("batchgen s: results.csv, results.jsonl [")
    assert token_of("Merge branch 'x'") is None and token_of(None) is None


def test_an_upload_may_take_the_request_timeout_plus_its_bytes_at_a_slow_rate() -> None:
    """An upload's timeout is the request timeout plus its bytes at MIN_UPLOAD_BYTES_PER_S."""
    assert upload_timeout_s(0, 60) == 60
    assert upload_timeout_s(10 * MIN_UPLOAD_BYTES_PER_S, 60) == 70
