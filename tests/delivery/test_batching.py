"""Batching (pure): files per directory in arrival order, cut at the limits; commit messages and tokens."""

from __future__ import annotations

from batchgen.delivery.batching import (
    MIN_UPLOAD_BYTES_PER_S,
    Batch,
    Outgoing,
    commit_message,
    plan_batches,
    token_of,
    upload_timeout_s,
)


def item(path: str, size: int = 10, *, result: bool = False) -> Outgoing:
    return Outgoing(path, f"c/{path}", size, sha256="0" * 64, result=result)


def test_files_are_grouped_by_directory_in_order_of_arrival() -> None:
    items = [item("videos/a/1.mp4"), item("videos/b/1.mp4"), item("videos/a/1.json"), item("results.csv")]
    batches = plan_batches(items)
    assert [(b.directory, [i.local for i in b.items]) for b in batches] == [
        ("c/videos/a", ["videos/a/1.mp4", "videos/a/1.json"]),
        ("c/videos/b", ["videos/b/1.mp4"]),
        ("c", ["results.csv"]),
    ]


def test_batches_are_cut_at_the_file_and_byte_limits_and_a_large_file_goes_alone() -> None:
    items = [item(f"v/{n}.mp4", 40) for n in range(5)] + [item("v/big.mp4", 500), item("v/z.mp4", 1)]
    sizes = [len(b.items) for b in plan_batches(items, max_files=3, max_bytes=100)]
    assert sizes == [2, 2, 1, 1, 1]
    assert [len(b.items) for b in plan_batches(items, max_files=2, max_bytes=10_000)] == [2, 2, 2, 1]


def test_a_later_file_at_the_same_path_replaces_the_earlier() -> None:
    first, second = item("v/1.json", 1), item("v/1.json", 2)
    [batch] = plan_batches([first, second])
    assert batch.items == (second,)


def test_halves_cover_the_batch() -> None:
    batch = Batch("c/v", tuple(item(f"v/{n}.mp4") for n in range(5)))
    left, right = batch.halves()
    assert left.items + right.items == batch.items and len(left.items) == 2


def test_a_commit_message_names_the_campaign_counts_and_token() -> None:
    batch = Batch("c/videos/hero", (item("videos/hero/1.mp4", result=True), item("videos/hero/1.json")))
    message = commit_message("spring-campaign", batch, "0123456789ab", (7, 21))
    assert message == (
        "batchgen spring-campaign: 1 result (2 files) in c/videos/hero; 7/21 jobs done [batchgen:0123456789ab]"
    )
    assert token_of(message) == "0123456789ab"
    files = Batch("c", (item("results.csv"), item("results.jsonl")))
    assert commit_message("s", files, "ffffffffffff").startswith("batchgen s: results.csv, results.jsonl [")
    assert token_of("Merge branch 'x'") is None and token_of(None) is None


def test_an_upload_may_take_the_request_timeout_plus_its_bytes_at_a_slow_rate() -> None:
    assert upload_timeout_s(0, 60) == 60
    assert upload_timeout_s(10 * MIN_UPLOAD_BYTES_PER_S, 60) == 70
